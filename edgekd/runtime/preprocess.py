"""Image pre-processing shared by training, export and every device: letterbox resize (and mapping boxes back),
colour conversion, normalisation. Torch-free (numpy + OpenCV)."""

from __future__ import annotations

import cv2
import numpy as np

PAD_VALUE = 114  # mid-gray padding, as in YOLO: neutral once inputs are normalised


def _size_pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _with_channels(result: np.ndarray, like: np.ndarray) -> np.ndarray:
    """OpenCV drops a trailing channel axis of size 1; put it back."""
    return result.reshape(result.shape[0], result.shape[1], like.shape[-1])


def letterbox(
    image: np.ndarray, size: int | tuple[int, int], fill: int = PAD_VALUE
) -> tuple[np.ndarray, tuple[float, float], tuple[int, int]]:
    """Resize keeping the aspect ratio to fit `size` (an int or (width, height)), then pad evenly.

    Returns (image, (scale_x, scale_y), (pad_x, pad_y)); the two scales differ only by the rounding of the
    resized size, and make `letterbox_boxes` / `unletterbox_boxes` exact.
    """
    out_w, out_h = _size_pair(size)
    height, width = image.shape[:2]
    ratio = min(out_w / width, out_h / height)
    new_w, new_h = max(1, round(width * ratio)), max(1, round(height * ratio))
    interpolation = cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR
    resized = _with_channels(cv2.resize(image, (new_w, new_h), interpolation=interpolation), image)
    pad_x, pad_y = (out_w - new_w) // 2, (out_h - new_h) // 2
    canvas = np.full((out_h, out_w, image.shape[-1]), fill, np.uint8)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    return canvas, (new_w / width, new_h / height), (pad_x, pad_y)


def letterbox_boxes(boxes: np.ndarray, scale: tuple[float, float], pad: tuple[int, int]) -> np.ndarray:
    """Boxes of the original image -> boxes of its letterboxed version."""
    sx, sy = scale
    return np.asarray(boxes, np.float32).reshape(-1, 4) * np.float32([sx, sy, sx, sy]) + np.float32(
        [pad[0], pad[1], pad[0], pad[1]]
    )


def unletterbox_boxes(
    boxes: np.ndarray, scale: tuple[float, float], pad: tuple[int, int], image_size: tuple[int, int] | None = None
) -> np.ndarray:
    """Boxes found on a letterboxed image -> boxes on the original, clipped to `image_size` (w, h)."""
    sx, sy = scale
    original = (
        np.asarray(boxes, np.float32).reshape(-1, 4) - np.float32([pad[0], pad[1], pad[0], pad[1]])
    ) / np.float32([sx, sy, sx, sy])
    if image_size is not None:
        original = np.clip(original, 0, [image_size[0], image_size[1]] * 2).astype(np.float32)
    return original


def fit_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """An H x W x C uint8 image (RGB or gray) with `channels` channels (1: gray, 3: RGB)."""
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == channels:
        return image
    if channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None]
    return np.repeat(image, 3, axis=-1)
