"""IDX files, the format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/), optionally gzipped."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from edgekd.errors import DatasetError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file into an array, checking its magic number and that its size matches its header."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DatasetError(f"{path}: cannot read IDX file ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DatasetError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DatasetError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DatasetError(
            f"{path}: IDX header promises shape {shape} ({expected} bytes) but the file holds "
            f"{len(raw) - header} bytes of data (truncated or corrupt)"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(folder: Path, prefix: str, kind: str) -> Path | None:
    for name in (f"{prefix}-{kind}-ubyte.gz", f"{prefix}-{kind}-ubyte", f"{prefix}-{kind}.idx3-ubyte"):
        if (folder / name).exists():
            return folder / name
    hits = sorted(folder.glob(f"{prefix}*{kind}*"))
    return hits[0] if hits else None


def is_idx_folder(folder: Path) -> bool:
    return _find(folder, "train", "images-idx3") is not None


def load_idx_pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Images (N,H,W,1) uint8 and labels (N,) int64 for `prefix` ("train" or "t10k"), or None if absent."""
    images_path = _find(folder, prefix, "images-idx3")
    labels_path = _find(folder, prefix, "labels-idx1")
    if images_path is None and labels_path is None:
        return None
    if images_path is None or labels_path is None:
        missing = "images" if images_path is None else "labels"
        raise DatasetError(
            f"{folder}: found {prefix} {'labels' if missing == 'images' else 'images'} "
            f"but no {prefix} {missing} IDX file"
        )
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DatasetError(
            f"{images_path}: expected uint8 images of shape (N, H, W), got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1:
        raise DatasetError(f"{labels_path}: expected a 1-D label vector, got shape {labels.shape}")
    if len(images) != len(labels):
        raise DatasetError(f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path}")
    return images[..., None], labels.astype(np.int64)
