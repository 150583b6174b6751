"""Decoupled knowledge distillation.

Zhao, Cui, Song, Qiu, Liang. "Decoupled Knowledge Distillation." CVPR 2022. arXiv:2203.08679.
KD is split into target-class KD (binary: target vs the rest) and non-target-class KD (distribution
among the non-target classes), weighted independently by alpha and beta; both ramp up linearly over the
first `warmup` fraction of training, as the paper does over its first 20 epochs.
"""

import torch
import torch.nn.functional as F

from edgekd.distill.base import DistillMethod, hard_label_ce

WARMUP_FRACTION = 0.2


def dkd_loss(student_logits, teacher_logits, targets, alpha: float, beta: float, temperature: float):
    """Returns (TCKD, NCKD), each already scaled by T^2 and averaged over the batch."""
    gt = F.one_hot(targets, student_logits.shape[1]).bool()
    p_s = F.softmax(student_logits / temperature, dim=1)
    p_t = F.softmax(teacher_logits / temperature, dim=1)
    # Binary distributions: probability of the target class vs all others.
    b_s = torch.stack([(p_s * gt).sum(1), (p_s * ~gt).sum(1)], dim=1).clamp_min(1e-8)
    b_t = torch.stack([(p_t * gt).sum(1), (p_t * ~gt).sum(1)], dim=1).clamp_min(1e-8)
    tckd = F.kl_div(b_s.log(), b_t, reduction="batchmean") * temperature**2
    # Non-target distributions: mask the target logit out with a large negative number.
    log_q_s = F.log_softmax(student_logits / temperature - 1000.0 * gt, dim=1)
    q_t = F.softmax(teacher_logits / temperature - 1000.0 * gt, dim=1)
    nckd = F.kl_div(log_q_s, q_t, reduction="batchmean") * temperature**2
    return alpha * tckd, beta * nckd


class DKD(DistillMethod):
    """Target-class and non-target-class KD weighted separately (needs a label per sample)."""

    name = "dkd"
    kind = "response"
    paper = "Zhao et al. CVPR 2022, arXiv:2203.08679"

    def terms(self, student, teacher, targets):
        ramp = min(1.0, self.progress / WARMUP_FRACTION)
        # Unlabeled samples take the teacher's argmax as their target class.
        targets_or_teacher = torch.where(targets >= 0, targets, teacher[0].argmax(1))
        tckd, nckd = dkd_loss(
            student[0], teacher[0], targets_or_teacher, self.cfg.dkd_alpha, self.cfg.dkd_beta, self.cfg.temperature
        )
        return {"ce": hard_label_ce(student[0], targets), "tckd": ramp * tckd, "nckd": ramp * nckd}
