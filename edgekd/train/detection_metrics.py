"""Moved to `edgekd.bench.detection_metrics` (torch-free, so devices score with it too); kept for old imports."""

from edgekd.bench.detection_metrics import MAP_SCORE_FLOOR, THRESHOLD_CANDIDATES, coco_map  # noqa: F401
