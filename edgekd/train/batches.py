"""Mini-batches from in-memory uint8 images: normalisation, per-sample augmentation, extra per-sample tensors.

Batch order depends only on (seed, epoch), so a resumed run sees exactly the batches the interrupted one
would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from edgekd.data.classification import ImageDataset

AUGMENT_PAD = 2


def to_tensor_nchw(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> uint8 tensor (N, C, H, W) in channels-last memory (faster convs on CPU)."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)


def random_crop_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per sample: shift by up to AUGMENT_PAD pixels (zero padding) and flip horizontally with p=0.5."""
    b, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (AUGMENT_PAD,) * 4)
    dy = torch.randint(0, 2 * AUGMENT_PAD + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * AUGMENT_PAD + 1, (b,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = dx[:, None] + torch.arange(w)
    flip = torch.rand(b, generator=generator) < 0.5
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]
    batch = torch.arange(b)[:, None, None, None]
    chans = torch.arange(x.shape[1])[None, :, None, None]
    return padded[batch, chans, rows, cols]


class Normalizer:
    def __init__(self, mean: list[float], std: list[float]):
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)

    def __call__(self, x_uint8: torch.Tensor) -> torch.Tensor:
        x = (x_uint8.float() / 255.0 - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last)


class Batches:
    """Iterates a dataset in shuffled mini-batches of dicts: x (float, normalised), y, index, and extras."""

    def __init__(
        self,
        dataset: ImageDataset,
        mean: list[float],
        std: list[float],
        batch_size: int,
        seed: int = 0,
        augment: bool = False,
        extras: dict[str, torch.Tensor] | None = None,
    ):
        self.images = to_tensor_nchw(dataset.images)
        self.labels = torch.from_numpy(dataset.labels)
        self.normalize = Normalizer(mean, std)
        self.batch_size, self.seed, self.augment = batch_size, seed, augment
        self.extras = extras or {}

    def __len__(self) -> int:
        return (len(self.labels) + self.batch_size - 1) // self.batch_size

    def epoch(self, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        order = torch.from_numpy(np.random.default_rng([self.seed, epoch]).permutation(len(self.labels)))
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            x = self.images[index]
            if self.augment:
                x = random_crop_flip(x, generator)
            batch = {"x": self.normalize(x), "y": self.labels[index], "index": index}
            batch.update({name: value[index] for name, value in self.extras.items()})
            yield batch


def iterate_eval(dataset: ImageDataset, mean, std, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    images, normalize = to_tensor_nchw(dataset.images), Normalizer(mean, std)
    for start in range(0, len(dataset), batch_size):
        yield (
            normalize(images[start : start + batch_size]),
            torch.from_numpy(dataset.labels[start : start + batch_size]),
        )
