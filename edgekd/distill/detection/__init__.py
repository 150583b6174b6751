"""Detection distillation. Loss-level methods (one file each): `none` (labels only), `response` (dense soft
heatmap and box KD), `feature` (neck imitation through an adapter, optionally masked to objects). Data-level:
`pseudo_label` turns a teacher's detections into labels (hard or confidence-weighted soft)."""

from edgekd.distill.detection.base import DetectionMethod, LabelsOnly
from edgekd.distill.detection.feature import FeatureImitation
from edgekd.distill.detection.pseudo_label import pseudo_label
from edgekd.distill.detection.response import DenseResponseKD
from edgekd.errors import ConfigError

DETECTION_METHODS: dict[str, type[DetectionMethod]] = {
    m.name: m for m in (LabelsOnly, DenseResponseKD, FeatureImitation)
}


def build_detection_method(name: str, cfg, student=None, teacher=None) -> DetectionMethod:
    if name not in DETECTION_METHODS:
        raise ConfigError(
            f"unknown detection distillation method '{name}'; choose one of "
            f"{', '.join(DETECTION_METHODS)} (pseudo-labels: --mode pseudo)"
        )
    return DETECTION_METHODS[name](cfg, student, teacher)


__all__ = ["DETECTION_METHODS", "DetectionMethod", "build_detection_method", "pseudo_label"]
