"""Response-based knowledge distillation.

Hinton, Vinyals, Dean. "Distilling the Knowledge in a Neural Network." NIPS Deep Learning Workshop, 2015.
arXiv:1503.02531. Loss: alpha * CE(hard) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T)).
"""

from edgekd.distill.base import DistillMethod, hard_label_ce, soft_kl


class HintonKD(DistillMethod):
    """Soft targets at temperature T blended with hard labels by alpha."""

    name = "kd"
    kind = "response"
    paper = "Hinton et al. 2015, arXiv:1503.02531"

    def terms(self, student, teacher, targets):
        alpha, temperature = self.cfg.alpha, self.cfg.temperature
        return {
            "ce": alpha * hard_label_ce(student[0], targets),
            "kd": (1.0 - alpha) * soft_kl(student[0], teacher[0], temperature),
        }
