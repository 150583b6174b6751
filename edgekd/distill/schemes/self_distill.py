"""Self-distillation: the network's previous generation teaches it.

Furlanello, Lipton, Tschannen, Itti, Anandkumar. "Born-Again Neural Networks." ICML 2018.
arXiv:1805.04770. Generation 0 is trained on labels alone; generation g (same architecture, new
initialisation) is distilled from generation g-1 with the chosen method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from torch import nn

from edgekd.distill.base import DistillMethod
from edgekd.distill.schemes.common import StudentRun, fit_student
from edgekd.distill.vanilla import Vanilla


def born_again(
    make_student: Callable[[], nn.Module],
    method: DistillMethod,
    splits,
    cfg,
    generations: int = 2,
    first: nn.Module | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
    show_progress: bool = True,
    **kwargs,
) -> StudentRun:
    """Returns the last generation; `extra["generations"]` lists every generation's test top-1.

    `first` is an already trained generation 0 (saves one training run when the caller has it).
    """
    accuracies = []
    sub = (lambda g: Path(run_dir) / f"gen{g}") if run_dir else (lambda g: None)
    if first is None:
        run = fit_student(
            make_student(),
            Vanilla(method.cfg),
            splits,
            cfg,
            run_dir=sub(0),
            resume=resume,
            label="self gen 0",
            show_progress=show_progress,
            **kwargs,
        )
        previous = run.model
        accuracies.append(run.top1)
    else:
        previous = first
    for g in range(1, generations + 1):
        method_g = type(method)(
            method.cfg, getattr(previous, "feature_channels", None), getattr(previous, "feature_channels", None)
        )
        run = fit_student(
            make_student(),
            method_g,
            splits,
            replace(cfg, seed=cfg.seed + g),
            teacher=previous,
            run_dir=sub(g),
            resume=resume,
            label=f"self gen {g}",
            show_progress=show_progress,
            **kwargs,
        )
        previous = run.model
        accuracies.append(run.top1)
    run.extra["generations"] = accuracies
    return run
