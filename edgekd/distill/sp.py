"""Relation-based distillation that preserves the batch's pairwise similarity structure.

Tung, Mori. "Similarity-Preserving Knowledge Distillation." ICCV 2019. arXiv:1907.09682.
G = normalise_rows(A A^T) for the flattened activations A of a layer in each network; the loss is
||G_s - G_t||_F^2 / b^2, weighted by gamma (3000 in the paper). Defaults to the last stage's maps.
"""

import torch
import torch.nn.functional as F

from edgekd.distill.base import DistillMethod, hard_label_ce


def similarity_matrix(activations: torch.Tensor) -> torch.Tensor:
    flat = activations.flatten(1)
    return F.normalize(flat @ flat.t(), p=2, dim=1)


def sp_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    b = student.shape[0]
    return (similarity_matrix(student) - similarity_matrix(teacher)).pow(2).sum() / (b * b)


class SimilarityPreserving(DistillMethod):
    """Match the normalised batch similarity matrices of the last stage."""

    name = "sp"
    kind = "relation"
    paper = "Tung & Mori ICCV 2019, arXiv:1907.09682"

    def __init__(self, cfg, student_channels=None, teacher_channels=None):
        super().__init__(cfg, student_channels, teacher_channels)
        stages = [n for n in (teacher_channels or {"stage3": 0}) if n.startswith("stage")]
        self.teacher_layer = stages[-1]
        self.student_layer = [n for n in (student_channels or {"stage3": 0}) if n.startswith("stage")][-1]

    @property
    def teacher_features(self):
        return (self.teacher_layer,)

    def terms(self, student, teacher, targets):
        loss = sp_loss(student[1][self.student_layer], teacher[1][self.teacher_layer].float())
        return {"ce": hard_label_ce(student[0], targets), "sp": self.cfg.sp_weight * loss}
