"""Training a detector, with or without a teacher: the detection counterpart of `fit_student`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from edgekd.config import TrainConfig
from edgekd.data.detection.augment import Augmenter
from edgekd.data.detection.dataset import DetectionDataset
from edgekd.distill.detection.base import DetectionMethod
from edgekd.train.detection_batches import DetectionBatches, prepare
from edgekd.train.detection_eval import calibrate_threshold, evaluate_detector
from edgekd.train.loop import Trainer


@dataclass
class DetectorRun:
    model: nn.Module
    history: list[dict]
    test: dict
    extra: dict = field(default_factory=dict)


def fit_detector(
    student: nn.Module,
    method: DetectionMethod,
    train_set: DetectionDataset,
    val_set: DetectionDataset,
    test_set: DetectionDataset,
    cfg: TrainConfig,
    teacher: nn.Module | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
    label: str = "detector",
    show_progress: bool = True,
) -> DetectorRun:
    """Train `student` with `method`; the teacher (if the method needs one) runs live, frozen, on each batch."""
    channels, height, width = student.input_shape
    train = prepare(train_set, (height, width), channels)
    batches = DetectionBatches(train, cfg.batch_size, cfg.seed, Augmenter() if cfg.augment else None)
    student = student.to(memory_format=torch.channels_last)
    if method.needs_teacher:
        teacher.eval().requires_grad_(False)

    def loss_fn(batch):
        teacher_out = None
        if method.needs_teacher:
            with torch.no_grad():
                teacher_out = teacher.forward_features(batch["x"])
        return method(student.forward_features(batch["x"]), teacher_out, batch)

    def validate():
        metrics = evaluate_detector(student, val_set)
        student.train()
        return {"map50": metrics["map50"], "map": metrics["map"]}

    trainer = Trainer(
        {"student": student, "method": method},
        loss_fn,
        batches,
        cfg,
        evaluate=validate,
        run_dir=run_dir,
        label=label,
        show_progress=show_progress,
    )
    if resume:
        trainer.resume()
    history = trainer.fit()
    threshold = calibrate_threshold(student.eval(), val_set)
    return DetectorRun(
        student, history, evaluate_detector(student, test_set, threshold), extra={"score_threshold": threshold}
    )
