"""Run a detector over a dataset, decode with the runtime's numpy post-processing (what devices run), and score
with the COCO evaluator: precision, recall, mAP@0.5, mAP@0.5:0.95, and CPU ms/image."""

from __future__ import annotations

import time

import numpy as np
import torch

from edgekd.bench.detection_metrics import MAP_SCORE_FLOOR, coco_map
from edgekd.data.detection.augment import letterbox, unletterbox_boxes
from edgekd.data.detection.dataset import DetectionDataset
from edgekd.runtime.postprocess import decode_centernet
from edgekd.train.detection_batches import fit_channels, to_model_input

SCORE_THRESHOLD = 0.3


@torch.no_grad()
def detect(
    model: torch.nn.Module, images: list[np.ndarray], score_threshold: float = MAP_SCORE_FLOOR, batch_size: int = 32
) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], float]:
    """Detections per image in the image's own pixels, and the median model ms/image at batch 1 ... batch_size."""
    channels, height, width = model.input_shape
    model.eval()
    results, seconds = [], []
    for start in range(0, len(images), batch_size):
        chunk, geometry = [], []
        for image in images[start : start + batch_size]:
            image = fit_channels(image, channels)
            boxed, scale, pad = letterbox(image, (width, height))
            chunk.append(boxed.reshape(height, width, channels))
            geometry.append((scale, pad, image.shape[:2]))
        x = to_model_input(chunk)
        started = time.perf_counter()
        outputs = model(x).numpy()
        seconds.append((time.perf_counter() - started) / len(chunk))
        for output, (scale, pad, shape) in zip(outputs, geometry, strict=True):
            boxes, scores, ids = decode_centernet(output, model.stride, score_threshold, input_size=(height, width))
            results.append((unletterbox_boxes(boxes, scale, pad, shape), scores, ids))
    return results, float(np.median(seconds) * 1000)


def calibrate_threshold(model: torch.nn.Module, val_set: DetectionDataset) -> float:
    """The operating score threshold: best F1 at IoU 0.5 on validation images (never on test)."""
    detections, _ = detect(model, val_set.images)
    best = coco_map(val_set.to_coco(), detections, scan_thresholds=True)["best_f1_threshold"]
    return SCORE_THRESHOLD if best is None else best


def evaluate_detector(
    model: torch.nn.Module, dataset: DetectionDataset, score_threshold: float = SCORE_THRESHOLD
) -> dict:
    detections, ms = detect(model, dataset.images)
    metrics = coco_map(dataset.to_coco(), detections, score_threshold)
    return {**metrics, "ms_per_image": ms, "images": len(dataset)}


def latency_ms(model: torch.nn.Module, runs: int = 30) -> float:
    """Median single-image latency of the torch model on this CPU (batch 1, after warm-up)."""
    model.eval()
    x = torch.zeros(1, *model.input_shape).contiguous(memory_format=torch.channels_last)
    times = []
    with torch.no_grad():
        for i in range(runs + 5):
            started = time.perf_counter()
            model(x)
            if i >= 5:
                times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000)
