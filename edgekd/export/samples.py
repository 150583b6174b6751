"""The data an export needs: calibration inputs (validation split), verification inputs and the task metric
(test split), for classifiers and detectors alike, prepared exactly as in training."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from edgekd.data.classification import load_dataset
from edgekd.data.detection.builtin import load_detection_splits
from edgekd.train.batches import iterate_eval
from edgekd.train.detection_batches import prepare, to_model_input
from edgekd.train.detection_eval import evaluate_detector
from edgekd.train.metrics import evaluate


@dataclass
class ExportData:
    task: str  # "classify" | "detect"
    calibration: np.ndarray  # float32 NCHW, model-ready
    verification: np.ndarray  # float32 NCHW, model-ready, held out (test split)
    test: Any  # the test split, for `metrics`
    meta: dict

    def metrics(self, model) -> dict:
        """Top-1 (classifier) or COCO metrics at the model's operating threshold (detector) on the test split.
        `model` is a torch module or anything that behaves like one (`verify.ExportedModel`)."""
        if self.task == "classify":
            return evaluate(model, self.test, self.meta["mean"], self.meta["std"])
        threshold = self.meta.get("score_threshold", 0.3)
        result = evaluate_detector(model, self.test, threshold)
        return {k: result[k] for k in ("precision", "recall", "map50", "map") if k in result}


def _first(batches, count: int) -> np.ndarray:
    taken, total = [], 0
    for x in batches:
        taken.append(x.numpy() if isinstance(x, torch.Tensor) else x)
        total += len(taken[-1])
        if total >= count:
            break
    return np.ascontiguousarray(np.concatenate(taken)[:count], dtype=np.float32)


def load_export_data(meta: dict, data: str | None, calibration_count: int, verification_count: int) -> ExportData:
    """Everything `edgekd export` measures with, from the model's own dataset unless `data` names another."""
    spec = data or meta.get("dataset")
    if meta.get("task") == "detect":
        splits = load_detection_splits(spec)
        _, height, width = meta["input_shape"]
        channels = meta["input_shape"][0]

        def model_ready(dataset, count):
            images = prepare(dataset, (height, width), channels).images[:count]
            return np.ascontiguousarray(to_model_input(images).numpy(), dtype=np.float32)

        return ExportData(
            "detect",
            model_ready(splits.val, calibration_count),
            model_ready(splits.test, verification_count),
            splits.test,
            meta,
        )
    splits = load_dataset(spec)
    mean, std = meta["mean"], meta["std"]
    return ExportData(
        "classify",
        _first((x for x, _ in iterate_eval(splits.val, mean, std, 256)), calibration_count),
        _first((x for x, _ in iterate_eval(splits.test, mean, std, 256)), verification_count),
        splits.test,
        meta,
    )
