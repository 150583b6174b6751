"""No distillation: the student learns from hard labels only (the baseline every method is compared to)."""

from edgekd.distill.base import DistillMethod, hard_label_ce


class Vanilla(DistillMethod):
    """Plain cross-entropy training, no teacher."""

    name = "none"
    kind = "none"
    paper = "-"
    needs_teacher = False

    def terms(self, student, teacher, targets):
        return {"ce": hard_label_ce(student[0], targets)}
