"""Distillation methods (one file each) and the schemes that train with them.

Methods: `none` (baseline), `kd` (Hinton), `fitnets` (hints), `rkd` (relational), `sp` (similarity
preserving), `dkd` (decoupled). Schemes live in `edgekd.distill.schemes`.
"""

from edgekd.distill.base import DistillMethod
from edgekd.distill.dkd import DKD
from edgekd.distill.fitnets import FitNets
from edgekd.distill.kd import HintonKD
from edgekd.distill.rkd import RKD
from edgekd.distill.sp import SimilarityPreserving
from edgekd.distill.vanilla import Vanilla
from edgekd.errors import ConfigError

METHODS: dict[str, type[DistillMethod]] = {
    m.name: m for m in (Vanilla, HintonKD, FitNets, RKD, SimilarityPreserving, DKD)
}


def build_method(name: str, cfg, student=None, teacher=None) -> DistillMethod:
    """Instantiate a method by name; feature-based methods size their adapters from the two models."""
    if name not in METHODS:
        raise ConfigError(f"unknown distillation method '{name}'; choose one of {', '.join(METHODS)}")
    return METHODS[name](cfg, getattr(student, "feature_channels", None), getattr(teacher, "feature_channels", None))


__all__ = ["METHODS", "DistillMethod", "build_method"]
