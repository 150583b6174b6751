"""Small shared test data: a tiny classification set made from sklearn digits (real images, 8x8)."""

import gzip
import struct
from pathlib import Path

import numpy as np

from edgekd.data.classification import DatasetSplits, ImageDataset, load_dataset


def tiny_splits(n_train: int = 200) -> DatasetSplits:
    full = load_dataset("digits")
    return DatasetSplits(
        full.train.subset(np.arange(n_train)),
        full.val.subset(np.arange(60)),
        full.test.subset(np.arange(100)),
        "digits-tiny",
        "test",
    )


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> Path:
    code = {np.dtype(np.uint8): 0x08}[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_idx_dataset(folder: Path, n_train=120, n_test=40, classes=10, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(n) % classes).astype(np.uint8)
        images = (rng.random((n, 12, 12)) * 60).astype(np.uint8)
        images[np.arange(n), labels, :] = 255  # a learnable pattern: the label's row is bright
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return folder


def subset(ds: ImageDataset, n: int) -> ImageDataset:
    return ds.subset(np.arange(min(n, len(ds))))
