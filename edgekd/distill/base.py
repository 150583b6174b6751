"""The interface every distillation method implements (one small file per method, as mdistiller does).

A method receives the student's and the teacher's outputs, each `(logits, features)` where features is
the dict returned by `Classifier.forward_features`, plus the hard targets (-1 marks an unlabeled sample),
and returns named loss terms whose sum is minimised. Terms are already weighted, so the printed
breakdown shows what each contributes.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.config import DistillConfig

Outputs = tuple[torch.Tensor, dict[str, torch.Tensor]]


def hard_label_ce(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy over the labeled samples of the batch (targets >= 0); zero when none are labeled."""
    labeled = targets >= 0
    if not labeled.any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits[labeled], targets[labeled], label_smoothing=label_smoothing)


def soft_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher_T || student_T), averaged over the batch, times T^2 so gradients keep their scale."""
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    p_teacher = F.softmax(teacher_logits / temperature, dim=1)
    return F.kl_div(log_p_student, p_teacher, reduction="batchmean") * temperature**2


class DistillMethod(nn.Module):
    """Base class. Subclasses set `name`, `kind`, `paper` and implement `terms`."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""  # response | feature | relation | none
    paper: ClassVar[str] = ""
    needs_teacher: ClassVar[bool] = True

    def __init__(
        self,
        cfg: DistillConfig,
        student_channels: dict[str, int] | None = None,
        teacher_channels: dict[str, int] | None = None,
    ):
        super().__init__()
        self.cfg = cfg
        self.progress = 1.0  # fraction of training done; methods with warm-up read it

    @property
    def teacher_features(self) -> tuple[str, ...]:
        """Teacher feature names this method reads (so a teacher cache stores only those)."""
        return ()

    def set_progress(self, fraction: float) -> None:
        self.progress = fraction

    def terms(self, student: Outputs, teacher: Outputs | None, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, student: Outputs, teacher: Outputs | None, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.terms(student, teacher, targets)
