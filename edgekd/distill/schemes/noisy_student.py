"""Knowledge expansion: Noisy Student training.

Xie, Luong, Hovy, Le. "Self-training with Noisy Student improves ImageNet classification." CVPR 2020.
arXiv:1911.04252. An un-noised teacher pseudo-labels the unlabeled images (soft or hard, optionally only
the confident ones); an equal-or-larger student is trained with noise (dropout, stochastic depth, input
augmentation) on labeled + pseudo-labeled images; the student becomes the next teacher. Unlike
compression, the student may end up better than its teacher, and the result says whether it did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgekd.data.classification import DatasetSplits, ImageDataset
from edgekd.distill.schemes.common import StudentRun
from edgekd.train.batches import Batches
from edgekd.train.loop import Trainer
from edgekd.train.metrics import evaluate, predict


def pseudo_targets(
    teacher: nn.Module,
    labeled: ImageDataset,
    unlabeled: ImageDataset,
    splits: DatasetSplits,
    soft: bool,
    threshold: float,
) -> tuple[ImageDataset, torch.Tensor]:
    """Labeled images with one-hot targets plus the confident unlabeled images with teacher targets."""
    probs = torch.from_numpy(predict(teacher, unlabeled, splits.mean, splits.std)).softmax(1)
    keep = (probs.max(1).values >= threshold).numpy()
    probs = probs[torch.from_numpy(keep)]
    if not soft:
        probs = F.one_hot(probs.argmax(1), probs.shape[1]).float()
    combined = ImageDataset(
        np.concatenate([labeled.images, unlabeled.images[keep]]),
        np.concatenate([labeled.labels, np.full(int(keep.sum()), -1)]),
        labeled.classes,
        f"{labeled.name}+pseudo",
    )
    one_hot = F.one_hot(torch.from_numpy(labeled.labels), probs.shape[1]).float()
    return combined, torch.cat([one_hot, probs])


def noisy_student(
    teacher: nn.Module,
    make_student: Callable[[], nn.Module],
    labeled: ImageDataset,
    unlabeled: ImageDataset,
    splits: DatasetSplits,
    cfg,
    iterations: int = 2,
    soft: bool = True,
    threshold: float = 0.0,
    run_dir: Path | None = None,
    resume: bool = False,
    show_progress: bool = True,
) -> StudentRun:
    """`make_student()` must return a noised model (dropout / drop_path) at least as large as the teacher."""
    cfg = replace(cfg, augment=True)  # input noise
    teacher_top1 = evaluate(teacher, splits.test, splits.mean, splits.std)["top1"]
    rounds = []
    for it in range(iterations):
        train_set, targets = pseudo_targets(teacher, labeled, unlabeled, splits, soft, threshold)
        student = make_student().to(memory_format=torch.channels_last)
        batches = Batches(train_set, splits.mean, splits.std, cfg.batch_size, cfg.seed + it, True, {"target": targets})

        def loss_fn(batch, student=student):
            return {"ce_pseudo": F.cross_entropy(student(batch["x"]), batch["target"])}

        trainer = Trainer(
            {"student": student},
            loss_fn,
            batches,
            replace(cfg, seed=cfg.seed + it),
            evaluate=lambda s=student: evaluate(s, splits.val, splits.mean, splits.std),
            run_dir=Path(run_dir) / f"round{it + 1}" if run_dir else None,
            label=f"noisy student {it + 1}",
            show_progress=show_progress,
        )
        if resume:
            trainer.resume()
        history = trainer.fit()
        test = evaluate(student.eval(), splits.test, splits.mean, splits.std, full=True)
        rounds.append({"round": it + 1, "pseudo_labeled": len(train_set) - len(labeled), "test_top1": test["top1"]})
        teacher = student
    return StudentRun(
        student,
        history,
        test,
        extra={
            "initial_teacher_top1": teacher_top1,
            "rounds": rounds,
            "student_beats_teacher": test["top1"] > teacher_top1,
        },
    )
