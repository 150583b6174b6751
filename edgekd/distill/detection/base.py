"""The interface of loss-level detection distillation: student and teacher head outputs (B, K + 4, H, W) with
their named features, the batch (boxes, class ids, per-box weights), and named loss terms out."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from edgekd.models.detection_loss import detection_loss

Outputs = tuple[torch.Tensor, dict[str, torch.Tensor]]


class DetectionMethod(nn.Module):
    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    needs_teacher: ClassVar[bool] = True

    def __init__(self, cfg, student=None, teacher=None):
        super().__init__()
        self.cfg = cfg
        self.stride = getattr(student, "stride", 8)

    def set_progress(self, fraction: float) -> None:
        """Detection methods have no warm-up; kept for the trainer's interface."""

    def label_terms(self, student: Outputs, batch: dict) -> dict[str, torch.Tensor]:
        terms = detection_loss(
            student[0], batch["boxes"], batch["class_ids"], self.stride, object_weights=batch.get("weights")
        )
        return {"heatmap": terms["heatmap"], "box": terms["loss"] - terms["heatmap"]}

    def terms(self, student: Outputs, teacher: Outputs | None, batch: dict) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, student, teacher, batch):
        return self.terms(student, teacher, batch)


class LabelsOnly(DetectionMethod):
    """No distillation: focal heatmap loss + GIoU box loss on the labels (true or pseudo)."""

    name = "none"
    paper = "-"
    needs_teacher = False

    def terms(self, student, teacher, batch):
        return self.label_terms(student, batch)
