"""Detector post-processing in numpy alone, so that it runs on a device without torch.

`decode_centernet` turns the single K + 4 channel output of `edgekd.models.detectors` into boxes:
CenterNet's 3x3 max-pool peak picking on the class heatmap (Zhou et al. 2019, arXiv:1904.07850), then the
FCOS ltrb distances at each peak (Tian et al. 2019, arXiv:1904.01355) give the box. CenterNet needs no NMS;
`nms` / `batched_nms` are there for models or ensembles that do (greedy NMS as in Girshick et al. 2014).
"""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    # The tanh form never overflows, unlike 1 / (1 + exp(-x)) for large negative x.
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def max_pool_3x3(x: np.ndarray) -> np.ndarray:
    """3x3, stride-1, same-size max pool over the last two axes."""
    height, width = x.shape[-2:]
    padded = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)], constant_values=-np.inf)
    pooled = padded[..., 0:height, 0:width]
    for dy in range(3):
        for dx in range(3):
            pooled = np.maximum(pooled, padded[..., dy : dy + height, dx : dx + width])
    return pooled


def decode_centernet(
    output: np.ndarray,
    stride: int,
    score_threshold: float = 0.3,
    max_detections: int = 100,
    input_size: int | tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (n, 4) x1y1x2y2 in input pixels, scores (n,) and class ids (n,), best score first.

    `output` is (K + 4, H, W) or (1, K + 4, H, W): K heatmap logits then left, top, right, bottom distances
    in strides from each cell centre. A detection is a heatmap cell that is the maximum of its 3x3
    neighbourhood and scores at least `score_threshold`. With `input_size` (int or (h, w)) boxes are
    clipped to the image.
    """
    output = np.asarray(output, dtype=np.float32)
    if output.ndim == 4 and output.shape[0] == 1:
        output = output[0]
    if output.ndim != 3 or output.shape[0] < 5:
        raise ValueError(f"expected a (K + 4, H, W) or (1, K + 4, H, W) detector output, got {output.shape}")
    logits, ltrb = output[:-4], output[-4:]
    # Sigmoid is monotonic: pick peaks on logits and squash only the few survivors.
    class_ids, rows, cols = np.nonzero(logits == max_pool_3x3(logits))
    scores = sigmoid(logits[class_ids, rows, cols])
    keep = np.nonzero(scores >= score_threshold)[0]
    keep = keep[np.argsort(-scores[keep], kind="stable")[:max_detections]]
    class_ids, rows, cols, scores = class_ids[keep], rows[keep], cols[keep], scores[keep]

    cx, cy = (cols + 0.5) * stride, (rows + 0.5) * stride
    left, top, right, bottom = ltrb[:, rows, cols] * stride
    boxes = np.stack([cx - left, cy - top, cx + right, cy + bottom], axis=1).astype(np.float32)
    if input_size is not None:
        height, width = (input_size, input_size) if np.isscalar(input_size) else input_size
        boxes = clip_boxes(boxes, (height, width))
    return boxes.reshape(-1, 4), scores.astype(np.float32), class_ids.astype(np.int64)


def clip_boxes(boxes: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Clip x1y1x2y2 boxes to an image of (height, width)."""
    height, width = image_size
    return np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)


def scale_boxes(
    boxes: np.ndarray,
    scale: float | tuple[float, float],
    pad: tuple[float, float],
    image_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Map boxes from a letterboxed input back to the original image.

    The letterbox is `letterboxed = original * scale + pad` with pad = (left, top) border in pixels and
    scale a number or (sx, sy). With `image_size` = original (height, width) the boxes are clipped to it.
    """
    scale_x, scale_y = (scale, scale) if np.isscalar(scale) else scale
    pad_x, pad_y = pad
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    out = (boxes - np.array([pad_x, pad_y, pad_x, pad_y], np.float32)) / np.array(
        [scale_x, scale_y, scale_x, scale_y], np.float32
    )
    return clip_boxes(out, image_size) if image_size is not None else out


def box_area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (n, m) between x1y1x2y2 boxes a (n, 4) and b (m, 4)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(-1)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5) -> np.ndarray:
    """Greedy non-maximum suppression: indices of the kept boxes, best score first.

    A box is dropped when its IoU with a better-scoring kept box exceeds `iou_threshold`.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep = []
    while order.size:
        best, order = order[0], order[1:]
        keep.append(best)
        order = order[box_iou(boxes[best : best + 1], boxes[order])[0] <= iou_threshold]
    return np.array(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float = 0.5) -> np.ndarray:
    """Class-aware NMS: boxes of different classes never suppress each other."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if boxes.size == 0:
        return np.zeros(0, dtype=np.int64)
    # Shift each class to its own region of the plane so that boxes of different classes cannot overlap.
    offset = np.asarray(class_ids, dtype=np.float64)[:, None] * (boxes.max() - boxes.min() + 1)
    return nms(boxes + offset, scores, iou_threshold)
