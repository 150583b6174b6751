"""Detection augmentations and resizing that keep boxes consistent with the image (numpy + OpenCV).

Images are uint8 H x W x C; boxes float32 (n, 4) pixel `x1, y1, x2, y2` on pixel edges. Random functions
draw only from the `np.random.Generator` they are given, so a seeded generator replays them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgekd.runtime.preprocess import (  # noqa: F401 (letterboxing is re-exported: training uses it from here)
    PAD_VALUE,
    _size_pair,
    _with_channels,
    letterbox,
    letterbox_boxes,
    unletterbox_boxes,
)

MIN_BOX_PX = 2.0  # boxes thinner than this after a crop are dropped: too little left to learn from


def _as_arrays(boxes, class_ids) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(class_ids, np.int64).reshape(-1)


def clip_boxes(
    boxes: np.ndarray,
    class_ids: np.ndarray,
    width: int,
    height: int,
    min_visible: float = 0.0,
    min_size: float = MIN_BOX_PX,
) -> tuple[np.ndarray, np.ndarray]:
    """Clip boxes to the image and drop those under `min_size` px or keeping less than `min_visible` of
    their area."""
    boxes, class_ids = _as_arrays(boxes, class_ids)
    full_area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    clipped = np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)
    extent = clipped[:, 2:] - clipped[:, :2]
    keep = (extent.min(axis=1) >= min_size) & (extent.prod(axis=1) >= min_visible * full_area)
    return clipped[keep], class_ids[keep]


def hflip(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right; flipping twice gives back the input."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    flipped = boxes[:, [2, 1, 0, 3]]
    flipped[:, [0, 2]] = image.shape[1] - flipped[:, [0, 2]]
    return np.ascontiguousarray(image[:, ::-1]), flipped


def random_scale_crop(
    image: np.ndarray,
    boxes: np.ndarray,
    class_ids: np.ndarray,
    rng: np.random.Generator,
    scale_range: tuple[float, float] = (0.75, 1.25),
    min_visible: float = 0.4,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zoom by a random factor and take a random window of the original size (padding when zoomed out).

    Boxes are clipped to the window; those keeping less than `min_visible` of their area are dropped.
    """
    boxes, class_ids = _as_arrays(boxes, class_ids)
    height, width = image.shape[:2]
    scale = rng.uniform(*scale_range)
    spare_x, spare_y = width - scale * width, height - scale * height
    shift_x = rng.uniform(min(0.0, spare_x), max(0.0, spare_x))
    shift_y = rng.uniform(min(0.0, spare_y), max(0.0, spare_y))
    # OpenCV's matrix maps pixel centres; this offset makes pixel edges map as e -> scale * e + shift.
    centre_offset = 0.5 * (scale - 1)
    matrix = np.float32([[scale, 0, shift_x + centre_offset], [0, scale, shift_y + centre_offset]])
    warped = cv2.warpAffine(
        image,
        matrix,
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(PAD_VALUE,) * 3,
    )
    moved = boxes * scale + np.float32([shift_x, shift_y, shift_x, shift_y])
    return (_with_channels(warped, image), *clip_boxes(moved, class_ids, width, height, min_visible=min_visible))


def adjust_brightness_contrast(image: np.ndarray, brightness: float, contrast: float) -> np.ndarray:
    """value -> (value - 128) * contrast + 128 + brightness, saturated to 0..255."""
    table = np.clip((np.arange(256) - 128.0) * contrast + 128.0 + brightness, 0, 255).astype(np.uint8)
    return table[image]


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return _with_channels(cv2.GaussianBlur(image, (0, 0), sigma), image)


def mosaic(
    samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]], size: int | tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tile four (image, boxes, class_ids) samples around a random centre into one image of `size`.

    Each sample is letterboxed into its quadrant, so no object is cut; all must have the same channels.
    """
    if len(samples) != 4 or len({s[0].shape[-1] for s in samples}) != 1:
        raise ValueError("mosaic needs four samples with the same number of channels")
    out_w, out_h = _size_pair(size)
    cx, cy = round(rng.uniform(0.25, 0.75) * out_w), round(rng.uniform(0.25, 0.75) * out_h)
    canvas = np.full((out_h, out_w, samples[0][0].shape[-1]), PAD_VALUE, np.uint8)
    quadrants = [(0, 0, cx, cy), (cx, 0, out_w, cy), (0, cy, cx, out_h), (cx, cy, out_w, out_h)]
    all_boxes, all_ids = [], []
    for (image, boxes, class_ids), (x0, y0, x1, y1) in zip(samples, quadrants, strict=True):
        tile, scale, pad = letterbox(image, (x1 - x0, y1 - y0))
        canvas[y0:y1, x0:x1] = tile
        all_boxes.append(letterbox_boxes(boxes, scale, pad) + np.float32([x0, y0, x0, y0]))
        all_ids.append(np.asarray(class_ids, np.int64).reshape(-1))
    return canvas, *clip_boxes(np.concatenate(all_boxes), np.concatenate(all_ids), out_w, out_h, min_size=1.0)


@dataclass
class Augmenter:
    """Random flip, scale + crop, brightness/contrast and blur: `augment(image, boxes, class_ids, rng)`.

    The output image has the input's shape; set a probability to 0 or a range to (1, 1) to turn a step off.
    """

    flip_prob: float = 0.5
    scale_range: tuple[float, float] = (0.75, 1.25)
    min_visible: float = 0.4  # boxes cut down to less than this fraction of their area are dropped
    brightness: float = 32.0  # largest shift, in gray levels, either way
    contrast_range: tuple[float, float] = (0.75, 1.25)
    blur_prob: float = 0.2
    blur_sigma_range: tuple[float, float] = (0.3, 1.2)

    def __call__(
        self, image: np.ndarray, boxes: np.ndarray, class_ids: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        boxes, class_ids = _as_arrays(boxes, class_ids)
        if rng.random() < self.flip_prob:
            image, boxes = hflip(image, boxes)
        if tuple(self.scale_range) != (1.0, 1.0):
            image, boxes, class_ids = random_scale_crop(
                image, boxes, class_ids, rng, self.scale_range, self.min_visible
            )
        if self.brightness or tuple(self.contrast_range) != (1.0, 1.0):
            image = adjust_brightness_contrast(
                image, rng.uniform(-self.brightness, self.brightness), rng.uniform(*self.contrast_range)
            )
        if rng.random() < self.blur_prob:
            image = gaussian_blur(image, rng.uniform(*self.blur_sigma_range))
        return image, boxes, class_ids
