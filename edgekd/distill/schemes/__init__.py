"""Schemes: how teacher and student are trained together.

- offline: a frozen, pre-trained teacher (Hinton et al. 2015)
- online: peers trained together, each distilling the others (deep mutual learning)
- self: born-again generations, each taught by the previous one
- noisy_student: knowledge expansion with pseudo-labels and a noised, equal-or-larger student
"""

from edgekd.distill.schemes.common import StudentRun, fit_student
from edgekd.distill.schemes.noisy_student import noisy_student
from edgekd.distill.schemes.offline import distill_offline
from edgekd.distill.schemes.online import distill_online
from edgekd.distill.schemes.self_distill import born_again

SCHEMES = {"offline": distill_offline, "online": distill_online, "self": born_again, "noisy_student": noisy_student}

__all__ = ["SCHEMES", "StudentRun", "born_again", "distill_offline", "distill_online", "fit_student", "noisy_student"]
