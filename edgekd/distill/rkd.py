"""Relation-based distillation of pairwise distances and triplet angles between embeddings.

Park, Kim, Lu, Cho. "Relational Knowledge Distillation." CVPR 2019. arXiv:1904.05068.
Distance term: Huber loss between the batch's pairwise distance matrices, each normalised by its mean.
Angle term: Huber loss between the cosines of the angles formed by every triplet. Weights 25 and 50
as in the paper. Embedding sizes may differ between student and teacher: only relations are compared.
"""

import torch
import torch.nn.functional as F

from edgekd.distill.base import DistillMethod, hard_label_ce


def _pairwise_distances(e: torch.Tensor) -> torch.Tensor:
    d = torch.cdist(e, e)
    mean = d[d > 0].mean() if (d > 0).any() else d.new_tensor(1.0)
    return d / mean


def rkd_distance(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        t = _pairwise_distances(teacher)
    return F.smooth_l1_loss(_pairwise_distances(student), t)


def _angles(e: torch.Tensor) -> torch.Tensor:
    diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)  # (B, B, D): unit vectors e_j - e_i
    return torch.bmm(diff, diff.transpose(1, 2)).flatten()  # cosine of angle at i between j and k


def rkd_angle(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        t = _angles(teacher)
    return F.smooth_l1_loss(_angles(student), t)


class RKD(DistillMethod):
    """Distance- and angle-wise relational KD on the pooled embeddings."""

    name = "rkd"
    kind = "relation"
    paper = "Park et al. CVPR 2019, arXiv:1904.05068"
    layer = "embedding"

    @property
    def teacher_features(self):
        return (self.layer,)

    def terms(self, student, teacher, targets):
        s, t = student[1][self.layer], teacher[1][self.layer].float()
        return {
            "ce": hard_label_ce(student[0], targets),
            "rkd_dist": self.cfg.rkd_distance * rkd_distance(s, t),
            "rkd_angle": self.cfg.rkd_angle * rkd_angle(s, t),
        }
