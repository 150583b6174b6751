"""Online distillation: teacher and student learn together, each distilling the other.

Zhang, Xiang, Hospedales, Lu. "Deep Mutual Learning." CVPR 2018. arXiv:1706.00384.
Each peer minimises its own method loss (cross-entropy + a response term towards the other peer's
detached outputs). With `kd` at T=1 and alpha=0.5 this is DML as published; any response method fits.
"""

from __future__ import annotations

import torch

from edgekd.distill.base import DistillMethod
from edgekd.distill.schemes.common import StudentRun
from edgekd.errors import ConfigError
from edgekd.train.batches import Batches
from edgekd.train.loop import Trainer
from edgekd.train.metrics import evaluate


def _detached(outputs):
    logits, feats = outputs
    return logits.detach(), {k: v.detach() for k, v in feats.items()}


def distill_online(
    student,
    method: DistillMethod,
    splits,
    cfg,
    teacher,
    peer_method: DistillMethod | None = None,
    run_dir=None,
    resume=False,
    label="online",
    show_progress=True,
    **_,
) -> StudentRun:
    """Train `student` and `teacher` (an untrained or pre-trained peer) together; returns the student's run.

    The teacher's own test metrics after co-training are in `extra["teacher_test"]`.
    """
    if method.kind != "response":
        raise ConfigError(f"online (mutual) distillation uses response methods; '{method.name}' is {method.kind}")
    peer_method = peer_method or type(method)(method.cfg)
    student = student.to(memory_format=torch.channels_last)
    teacher = teacher.to(memory_format=torch.channels_last).requires_grad_(True)
    batches = Batches(splits.train, splits.mean, splits.std, cfg.batch_size, cfg.seed, cfg.augment)

    def loss_fn(batch):
        s_out, t_out = student.forward_features(batch["x"]), teacher.forward_features(batch["x"])
        terms = {f"student_{k}": v for k, v in method(s_out, _detached(t_out), batch["y"]).items()}
        terms.update({f"teacher_{k}": v for k, v in peer_method(t_out, _detached(s_out), batch["y"]).items()})
        return terms

    def progress(fraction):
        method.set_progress(fraction)
        peer_method.set_progress(fraction)

    trainer = Trainer(
        {"student": student, "teacher": teacher, "method": method, "peer_method": peer_method},
        loss_fn,
        batches,
        cfg,
        evaluate=lambda: evaluate(student, splits.val, splits.mean, splits.std),
        run_dir=run_dir,
        on_progress=progress,
        label=label,
        show_progress=show_progress,
    )
    if resume:
        trainer.resume()
    history = trainer.fit()
    teacher_test = evaluate(teacher, splits.test, splits.mean, splits.std)
    return StudentRun(
        student.eval(),
        history,
        evaluate(student, splits.test, splits.mean, splits.std, full=True),
        extra={"teacher_test": teacher_test},
    )
