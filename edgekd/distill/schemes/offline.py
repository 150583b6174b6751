"""Offline distillation: a pre-trained teacher, frozen in eval mode, teaches the student.

Hinton, Vinyals, Dean 2015 (arXiv:1503.02531); the setting of the thesis and of most KD work.
"""

from edgekd.distill.schemes.common import StudentRun, fit_student


def distill_offline(student, method, splits, cfg, teacher, **kwargs) -> StudentRun:
    """Train the student with `method` against the frozen teacher; gradients never reach the teacher."""
    return fit_student(student, method, splits, cfg, teacher=teacher, **kwargs)
