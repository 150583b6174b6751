"""Mini-batches for detectors: images letterboxed to the model's input once, then augmented per sample with boxes
kept consistent. Augmentation draws from a generator seeded by (seed, epoch, image), so a resumed run sees the
same batches as an uninterrupted one."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from edgekd.data.detection.augment import Augmenter, letterbox, letterbox_boxes
from edgekd.data.detection.dataset import DetectionDataset
from edgekd.runtime.preprocess import fit_channels  # noqa: F401 (re-exported)


def to_model_input(images: list[np.ndarray] | np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, C) -> float (B, C, H, W) in [0, 1], the detectors' input convention."""
    array = np.ascontiguousarray(np.stack(images) if isinstance(images, list) else images)
    return torch.from_numpy(array).permute(0, 3, 1, 2).float().div_(255.0).contiguous(memory_format=torch.channels_last)


def prepare(dataset: DetectionDataset, input_size: tuple[int, int], channels: int) -> DetectionDataset:
    """The dataset letterboxed to `input_size` (h, w) with the model's channel count; boxes mapped along."""
    images, boxes = [], []
    for image, image_boxes in zip(dataset.images, dataset.boxes, strict=True):
        image = fit_channels(image, channels)
        if image.shape[:2] != tuple(input_size):
            image, scale, pad = letterbox(image, (input_size[1], input_size[0]))
            image = image.reshape(input_size[0], input_size[1], channels)
            image_boxes = letterbox_boxes(image_boxes, scale, pad)
        images.append(image)
        boxes.append(image_boxes)
    return DetectionDataset(
        images,
        boxes,
        dataset.class_ids,
        dataset.classes,
        dataset.name,
        dataset.files,
        dataset.skipped,
        dict(dataset.info, weights=dataset.info.get("weights")),
    )


class DetectionBatches:
    """Yields {x, boxes, class_ids, weights, index}; `weights` are per-box confidences (1 for true labels)."""

    def __init__(self, dataset: DetectionDataset, batch_size: int, seed: int = 0, augment: Augmenter | None = None):
        self.dataset, self.batch_size, self.seed, self.augment = dataset, batch_size, seed, augment
        self.weights = dataset.info.get("weights") or [np.ones(len(b), np.float32) for b in dataset.boxes]

    def __len__(self) -> int:
        return (len(self.dataset) + self.batch_size - 1) // self.batch_size

    def epoch(self, epoch: int) -> Iterator[dict]:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.dataset))
        for start in range(0, len(order), self.batch_size):
            images, boxes, ids, weights = [], [], [], []
            for i in order[start : start + self.batch_size]:
                image, b, c = self.dataset.images[i], self.dataset.boxes[i], self.dataset.class_ids[i]
                w = self.weights[i]
                if self.augment is not None:
                    # Augment box indexes in place of class ids: the survivors index the class ids and weights.
                    rng = np.random.default_rng([self.seed, epoch, int(i)])
                    tagged = np.arange(len(b), dtype=np.int64)
                    image, b, kept = self.augment(image, b, tagged, rng)
                    c, w = self.dataset.class_ids[i][kept], w[kept]
                images.append(image.reshape(self.dataset.images[i].shape))
                boxes.append(b)
                ids.append(c)
                weights.append(w)
            yield {
                "x": to_model_input(images),
                "boxes": boxes,
                "class_ids": ids,
                "weights": weights,
                "y": torch.zeros(len(images)),
                "index": torch.from_numpy(order[start : start + self.batch_size]),
            }
