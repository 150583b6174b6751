"""Dense response-based KD for CenterNet-style heads.

Soft targets on the class heatmaps, as Hinton et al. 2015 (arXiv:1503.02531) on logits, applied per cell with
sigmoid outputs as in dense-prediction KD (e.g. Zheng et al., "Localization Distillation", CVPR 2022,
arXiv:2102.12252, for the box branch): binary KL between sigmoid(teacher / T) and sigmoid(student / T) at every
cell, times T^2, normalised by the number of objects like the focal loss; plus an L1 loss between the student's
and the teacher's l/t/r/b distances, weighted by the teacher's foreground confidence at each cell. Teacher and
student must share the output grid (same input size and stride).
"""

import torch
import torch.nn.functional as F

from edgekd.distill.detection.base import DetectionMethod


def binary_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    p = torch.sigmoid(teacher_logits / temperature)
    log_q, log_not_q = F.logsigmoid(student_logits / temperature), F.logsigmoid(-student_logits / temperature)
    entropy_p = p * torch.log(p.clamp_min(1e-12)) + (1 - p) * torch.log((1 - p).clamp_min(1e-12))
    return entropy_p - p * log_q - (1 - p) * log_not_q


class DenseResponseKD(DetectionMethod):
    """Labels + beta * (heatmap soft-target KL + confidence-weighted box L1 towards the teacher)."""

    name = "response"
    paper = "Hinton et al. 2015 (soft targets) on dense heads; box KD as in Zheng et al. CVPR 2022"

    def terms(self, student, teacher, batch):
        s_out, t_out = student[0], teacher[0].float()
        if s_out.shape != t_out.shape:
            from edgekd.errors import ConfigError

            raise ConfigError(
                f"response KD needs the same head shape: student {tuple(s_out.shape)}, teacher "
                f"{tuple(t_out.shape)} (use pseudo-labels for other teachers)"
            )
        k, temperature = s_out.shape[1] - 4, self.cfg.det_temperature
        objects = max(1, sum(len(b) for b in batch["boxes"]))
        heat = binary_kl(s_out[:, :k], t_out[:, :k], temperature).sum() * temperature**2 / objects
        confidence = torch.sigmoid(t_out[:, :k]).amax(1, keepdim=True)
        box = ((s_out[:, k:] - t_out[:, k:]).abs() * confidence).sum() / confidence.sum().clamp_min(1e-6) / 4
        return {**self.label_terms(student, batch), "kd_heatmap": self.cfg.beta * heat, "kd_box": self.cfg.beta * box}
