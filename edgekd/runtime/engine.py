"""The one engine every device runs: a model file and its manifest in, labelled predictions out. Torch-free.

Pre-processing (resize or letterbox, gray/RGB, scale, mean/std, layout, int8 input quantization) and
post-processing (dequantization, softmax or box decoding, NMS, labels, boxes back to image pixels) follow the
manifest that `edgekd export` wrote. Models from other tools (an Ultralytics YOLOv5/v8 or a classifier, as
.onnx or .tflite) run with `task` and `labels` given instead: see `third_party_manifest`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgekd.runtime.backends import ModelFileError, open_backend
from edgekd.runtime.manifest import read_manifest
from edgekd.runtime.postprocess import batched_nms, decode_centernet, sigmoid
from edgekd.runtime.preprocess import fit_channels, letterbox, unletterbox_boxes


@dataclass
class Classification:
    class_id: int
    label: str
    score: float
    probabilities: np.ndarray


@dataclass
class Detections:
    boxes: np.ndarray  # (n, 4) x1 y1 x2 y2 in the original image's pixels
    scores: np.ndarray
    class_ids: np.ndarray
    labels: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.scores)


@dataclass
class Geometry:
    """How an image was fitted to the model input, to map boxes back."""

    scale: tuple[float, float]
    pad: tuple[int, int]
    size: tuple[int, int]  # original (width, height)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(-1, keepdims=True)


# ------------------------------------------------------------------ third-party models


def _yolo_layout(shape: list) -> str:
    """YOLOv5 writes (1, N, 5 + K) with objectness, YOLOv8 (1, 4 + K, N) without; N is the larger axis."""
    return "yolov8" if shape[1] < shape[2] else "yolov5"


def third_party_manifest(path: str | Path, task: str, labels: list[str]) -> dict:
    """A manifest for a model edgekd did not export: RGB, pixels / 255, letterbox (detect) or stretch."""
    if task not in ("classify", "detect"):
        raise ModelFileError(f"{path}: task must be classify or detect, got {task!r}")
    backend = open_backend(path)
    described = backend.describe()
    channels = backend.input_shape[1]
    decoding = {"kind": "softmax"}
    if task == "detect":
        shape = described["outputs"][0]["shape"]
        if len(shape) != 3:
            raise ModelFileError(f"{path}: a YOLO-style detector has one (1, N, 5 + K) or (1, 4 + K, N) output")
        decoding = {"kind": _yolo_layout(shape), "score_threshold": 0.25, "nms_iou": 0.45, "max_detections": 300}
    return {
        "format": Path(path).suffix.lstrip("."),
        "task": task,
        "input": {
            **described["input"],
            "preprocessing": {
                "resize": "letterbox" if task == "detect" else "stretch",
                "color": "gray" if channels == 1 else "rgb",
                "scale": 1 / 255,
                "mean": [0.0] * channels,
                "std": [1.0] * channels,
            },
        },
        "outputs": described["outputs"],
        "decoding": decoding,
        "labels": list(labels),
    }


def decode_yolo(output: np.ndarray, kind: str, score_threshold: float, nms_iou: float, max_detections: int):
    """YOLOv5 / v8 raw output -> boxes x1y1x2y2 (input pixels), scores, class ids, after class-aware NMS."""
    rows = output[0] if kind == "yolov5" else output[0].T  # (N, 5 + K) or (N, 4 + K)
    xywh = rows[:, :4]
    scores_all = rows[:, 5:] * rows[:, 4:5] if kind == "yolov5" else rows[:, 4:]
    class_ids = scores_all.argmax(1)
    scores = scores_all[np.arange(len(rows)), class_ids]
    keep = scores >= score_threshold
    xywh, scores, class_ids = xywh[keep], scores[keep], class_ids[keep]
    boxes = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
    kept = batched_nms(boxes, scores, class_ids, nms_iou)[:max_detections]
    return boxes[kept].astype(np.float32), scores[kept].astype(np.float32), class_ids[kept].astype(np.int64)


# ------------------------------------------------------------------ the engine


class Engine:
    """Load once, then `predict(image)`; `image` is H x W x C uint8 RGB (or H x W gray)."""

    def __init__(
        self,
        path: str | Path,
        threads: int = 1,
        task: str | None = None,
        labels: list[str] | None = None,
    ):
        started = time.perf_counter()
        self.path = Path(path)
        if task is None:
            self.manifest = read_manifest(self.path)  # edgekd's own export: verified, sha256 checked
        else:
            self.manifest = third_party_manifest(self.path, task, labels or [])
        layout = self.manifest["input"].get("layout", "NCHW")
        self.backend = open_backend(self.path, threads, channels_last=layout == "NHWC")
        self.threads = threads
        self.task = self.manifest["task"]
        self.labels = list(self.manifest.get("labels", []))
        pre = self.manifest["input"]["preprocessing"]
        self.channels, self.height, self.width = (int(v) for v in self.backend.input_shape[1:4])
        self._scale = np.float32(pre["scale"])
        self._mean = np.float32(pre["mean"]).reshape(1, -1, 1, 1)
        self._std = np.float32(pre["std"]).reshape(1, -1, 1, 1)
        self._table = self._native_table()
        self.load_seconds = time.perf_counter() - started

    @property
    def runtime(self) -> str:
        return self.backend.runtime

    @property
    def table_input(self) -> bool:
        """Whether predict() feeds the model its stored input through one table lookup (see _native_table)."""
        return self._table is not None and hasattr(self.backend, "run_native")

    def predict_via_float(self, image: np.ndarray) -> Classification | Detections:
        """predict() through the float pre-processing (what runs when there is no table): the comparison."""
        x, geometry = self.preprocess(image)
        return self.postprocess(self.infer(x), geometry)

    def fit(self, image: np.ndarray) -> tuple[np.ndarray, Geometry]:
        """uint8 image -> the model's size and channels (H x W x C uint8), and how it was fitted."""
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise ValueError(f"expected an H x W (x C) uint8 image, got {image.dtype} {image.shape}")
        image = fit_channels(image, self.channels)
        height, width = image.shape[:2]
        if self.manifest["input"]["preprocessing"]["resize"] == "letterbox":
            fitted, scale, pad = letterbox(image, (self.width, self.height))
        else:
            fitted = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_AREA)
            scale, pad = (self.width / width, self.height / height), (0, 0)
        return fitted.reshape(self.height, self.width, self.channels), Geometry(scale, pad, (width, height))

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, Geometry]:
        """uint8 image -> float32 (1, C, H, W) model input, and how it was fitted."""
        fitted, geometry = self.fit(image)
        return self._normalize(fitted.transpose(2, 0, 1)[None]), geometry

    def _normalize(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 (1, C, ...) -> float32: scale, then mean / std per channel."""
        return (pixels.astype(np.float32) * self._scale - self._mean) / self._std

    def _native_table(self) -> np.ndarray | None:
        """Pixel value -> the input tensor's value, per channel, as a cv2.LUT table, when the backend takes its
        input in its own element type (`native_input` / `run_native`: TFLite's quantized NHWC, ONNX's float). Every
        element of the pre-processing and the input quantization depends on its pixel alone, so the table holds the
        same operations on each of the 256 values and a frame needs one table lookup instead of float arithmetic,
        with bit-identical results."""
        stored = getattr(self.backend, "native_input", None)
        values = self._normalize(np.broadcast_to(np.arange(256, dtype=np.uint8), (1, self.channels, 1, 256)))
        table = stored(values) if stored else None
        return None if table is None else np.ascontiguousarray(table[0, :, 0, :].T.reshape(256, 1, self.channels))

    def infer(self, x: np.ndarray) -> list[np.ndarray]:
        """Raw float outputs for a model-ready input (what `edgekd bench` times)."""
        return self.backend.run(x)

    def postprocess(self, outputs: list[np.ndarray], geometry: Geometry) -> Classification | Detections:
        decoding = self.manifest.get("decoding", {"kind": "softmax"})
        if self.task == "classify":
            probabilities = softmax(outputs[0][0].astype(np.float64))
            best = int(probabilities.argmax())
            return Classification(best, self._label(best), float(probabilities[best]), probabilities)
        kind = decoding["kind"]
        threshold = decoding.get("score_threshold", 0.3)
        max_detections = decoding.get("max_detections", 100)
        if kind == "centernet":
            boxes, scores, ids = decode_centernet(
                outputs[0][0], decoding["stride"], threshold, max_detections, (self.height, self.width)
            )
        elif kind in ("yolov5", "yolov8"):
            raw = outputs[0]
            if raw.size and np.abs(raw[..., :4] if kind == "yolov5" else raw[:, :4]).max() <= 1.5:
                # Some TFLite exports give coordinates as fractions of the input size.
                raw = raw.copy()
                size = np.float32([self.width, self.height, self.width, self.height])
                if kind == "yolov5":
                    raw[..., :4] *= size
                else:
                    raw[:, :4] *= size[None, :, None]
            boxes, scores, ids = decode_yolo(raw, kind, threshold, decoding.get("nms_iou", 0.45), max_detections)
        else:
            raise ModelFileError(f"{self.path}: unknown decoding {kind!r} in its manifest")
        boxes = unletterbox_boxes(boxes, geometry.scale, geometry.pad, geometry.size)
        return Detections(boxes, scores, ids, [self._label(int(i)) for i in ids])

    def predict(self, image: np.ndarray) -> Classification | Detections:
        if not self.table_input:
            return self.predict_via_float(image)
        fitted, geometry = self.fit(image)
        sample = cv2.LUT(fitted, self._table).reshape(1, self.height, self.width, self.channels)
        return self.postprocess(self.backend.run_native(sample), geometry)

    def _label(self, class_id: int) -> str:
        return self.labels[class_id] if class_id < len(self.labels) else str(class_id)


__all__ = ["Classification", "Detections", "Engine", "decode_yolo", "sigmoid", "softmax", "third_party_manifest"]
