"""What every scheme shares: fitting a student with a method and an (optional) teacher, then measuring it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from edgekd.config import TrainConfig
from edgekd.data.classification import DatasetSplits, ImageDataset
from edgekd.distill.base import DistillMethod
from edgekd.distill.teacher_cache import cached_teacher_view, teacher_outputs
from edgekd.train.batches import Batches
from edgekd.train.loop import Trainer
from edgekd.train.metrics import evaluate


@dataclass
class StudentRun:
    """A trained model, its per-epoch history and its test metrics."""

    model: nn.Module
    history: list[dict]
    test: dict
    extra: dict = field(default_factory=dict)

    @property
    def top1(self) -> float:
        return self.test["top1"]


def fit_student(
    student: nn.Module,
    method: DistillMethod,
    splits: DatasetSplits,
    cfg: TrainConfig,
    teacher: nn.Module | None = None,
    train_set: ImageDataset | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
    cache_dir: Path | None = None,
    label: str = "student",
    show_progress: bool = True,
) -> StudentRun:
    """Train `student` with `method` against a frozen `teacher` (offline) on `train_set` (default: splits.train).

    The teacher's outputs are cached once when inputs do not change between epochs (no augmentation).
    """
    train_set = train_set or splits.train
    extras, teacher_fn = {}, None
    if method.needs_teacher:
        if teacher is None:
            from edgekd.errors import ConfigError

            raise ConfigError(f"method '{method.name}' needs a teacher")
        teacher.eval().requires_grad_(False)
        features = method.teacher_features
        if not cfg.augment:
            extras = teacher_outputs(teacher, train_set, features, splits.mean, splits.std, cache_dir)
            teacher_fn = lambda batch: cached_teacher_view(batch, features)  # noqa: E731
        else:

            def teacher_fn(batch):
                with torch.no_grad():
                    return teacher.forward_features(batch["x"])

    student = student.to(memory_format=torch.channels_last)
    batches = Batches(train_set, splits.mean, splits.std, cfg.batch_size, cfg.seed, cfg.augment, extras)

    def loss_fn(batch):
        student_out = student.forward_features(batch["x"])
        return method(student_out, teacher_fn(batch) if teacher_fn else None, batch["y"])

    trainer = Trainer(
        {"student": student, "method": method},
        loss_fn,
        batches,
        cfg,
        evaluate=lambda: evaluate(student, splits.val, splits.mean, splits.std),
        run_dir=run_dir,
        on_progress=method.set_progress,
        label=label,
        show_progress=show_progress,
    )
    if resume:
        trainer.resume()
    history = trainer.fit()
    return StudentRun(student.eval(), history, evaluate(student, splits.test, splits.mean, splits.std, full=True))
