"""Accuracy of a model file as a device measures it: every test image through the engine (pre-processing, model,
post-processing), then top-1 for a classifier, or COCO precision / recall / mAP@0.5 / mAP@0.5:0.95 for a detector
(the same evaluator that training and export use). Torch-free."""

from __future__ import annotations

import copy
from functools import lru_cache

import numpy as np

from edgekd.errors import DatasetError
from edgekd.runtime.engine import Engine


@lru_cache(maxsize=2)
def load_test_split(data: str, task: str):
    """(dataset name, test split) of `data`, loaded once per process: a bench run usually scores several models on
    one dataset."""
    if task == "classify":
        from edgekd.data.classification import load_dataset

        splits = load_dataset(data)
    else:
        from edgekd.data.detection.builtin import load_detection_splits

        splits = load_detection_splits(data)
    return splits.name, splits.test


def _check_labels(engine: Engine, data: str, classes: list[str]) -> None:
    if engine.labels and len(engine.labels) != len(classes):
        raise DatasetError(f"{data}: {len(classes)} classes, but the model has {len(engine.labels)} labels")


def _classification(engine: Engine, data: str, max_images: int | None) -> dict:
    name, test = load_test_split(data, "classify")
    _check_labels(engine, data, test.classes)
    count = len(test) if max_images is None else min(max_images, len(test))
    predicted = np.array([engine.predict(test.images[i]).class_id for i in range(count)])
    top1 = float((predicted == test.labels[:count]).mean())
    return {"dataset": name, "split": "test", "images": count, "metrics": {"top1": top1}, "primary": "top1"}


def _detection(engine: Engine, data: str, max_images: int | None) -> dict:
    from edgekd.bench.detection_metrics import MAP_SCORE_FLOOR, coco_map

    name, test = load_test_split(data, "detect")
    if max_images is not None and max_images < len(test):
        test = test.subset(np.arange(max_images))
    _check_labels(engine, data, test.classes)
    decoding = engine.manifest.get("decoding", {})
    # COCO ranks every detection down to a floor; precision / recall are read at the model's operating threshold.
    # A shallow copy shares the loaded model and only swaps the manifest its post-processing reads.
    ranking = copy.copy(engine)
    ranking.manifest = {**engine.manifest, "decoding": {**decoding, "score_threshold": MAP_SCORE_FLOOR}}
    detections = []
    for image in test.images:
        found = ranking.predict(image)
        detections.append((found.boxes, found.scores, found.class_ids))
    result = coco_map(test.to_coco(), detections, decoding.get("score_threshold", 0.3))
    metrics = {key: float(result[key]) for key in ("precision", "recall", "map50", "map")}
    return {"dataset": name, "split": "test", "images": len(test), "metrics": metrics, "primary": "map50"}


def measure_accuracy(engine: Engine, data: str, max_images: int | None = None) -> dict:
    """The report's `accuracy` section for `engine` on the test split of `data` (a built-in name or a path)."""
    if engine.task == "classify":
        return _classification(engine, data, max_images)
    return _detection(engine, data, max_images)
