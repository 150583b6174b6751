import cv2
import numpy as np
import pytest

from edgekd.config import FASHION_MNIST_DIR
from edgekd.data.classification import load_dataset, split_labeled
from edgekd.data.idx import read_idx
from edgekd.errors import DatasetError
from tests.conftest import IN_CI
from tests.helpers import write_idx, write_idx_dataset


def test_builtins_need_no_download_and_split_deterministically():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert a.describe()["sizes"] == {"train": 1258, "val": 180, "test": 359}
    assert np.array_equal(a.test.labels, b.test.labels) and np.array_equal(a.train.images, b.train.images)
    mnist = load_dataset("mnist-5k")
    assert mnist.train.image_shape == (28, 28, 1) and len(mnist.classes) == 10
    total = len(mnist.train) + len(mnist.val) + len(mnist.test)
    assert total == 5000


def test_fashion_mnist_found_automatically():
    if not FASHION_MNIST_DIR.is_dir():
        if IN_CI:
            pytest.fail("Debian dataset-fashion-mnist is not installed, but CI=true: scripts/install.sh installs it")
        pytest.skip("Debian dataset-fashion-mnist not installed")
    splits = load_dataset("fashion-mnist")
    assert len(splits.train) + len(splits.val) == 60000 and len(splits.test) == 10000
    assert splits.classes[0] == "t-shirt"


def test_idx_folder_round_trip(tmp_path):
    folder = write_idx_dataset(tmp_path / "idx")
    splits = load_dataset(folder)
    assert len(splits.test) == 40 and len(splits.train) + len(splits.val) == 120
    assert splits.train.image_shape == (12, 12, 1)


def test_idx_corrupt_and_mismatched(tmp_path):
    folder = write_idx_dataset(tmp_path / "idx")
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.gz"):
        load_dataset(folder)
    write_idx(folder / "train-images-idx3-ubyte.gz", np.zeros((5, 12, 12), np.uint8))
    with pytest.raises(DatasetError, match="labels for 5 images"):
        load_dataset(folder)
    truncated = tmp_path / "t-images-idx3-ubyte"
    write_idx(truncated, np.zeros((5, 4, 4), np.uint8), gz=False)
    truncated.write_bytes(truncated.read_bytes()[:-3])
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        read_idx(truncated)


def test_missing_and_empty_datasets(tmp_path):
    with pytest.raises(DatasetError, match="no such dataset folder"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no class sub-folders"):
        load_dataset(tmp_path / "empty")
    (tmp_path / "empty" / "cat").mkdir()
    with pytest.raises(DatasetError, match="contain no images"):
        load_dataset(tmp_path / "empty")


def _image_tree(root, n=6):
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(root / cls / f"{i}.png"), (rng.random((10, 10, 3)) * 255).astype(np.uint8))
    return root


def test_image_folder_and_corrupt_image(tmp_path):
    root = _image_tree(tmp_path / "tree")
    splits = load_dataset(root)
    assert splits.classes == ["cat", "dog"] and splits.train.image_shape == (10, 10, 3)
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DatasetError, match=r"broken\.png: corrupt or unreadable image"):
        load_dataset(root)


def test_image_folder_with_explicit_splits(tmp_path):
    _image_tree(tmp_path / "ds" / "train")
    _image_tree(tmp_path / "ds" / "test", n=3)
    splits = load_dataset(tmp_path / "ds")
    assert len(splits.test) == 6 and len(splits.train) + len(splits.val) == 12


def test_split_labeled_is_class_balanced():
    splits = load_dataset("digits")
    labeled, unlabeled = split_labeled(splits.train, 100, seed=0)
    assert len(labeled) == 100 and np.bincount(labeled.labels).tolist() == [10] * 10
    assert (unlabeled.labels == -1).all() and len(unlabeled) == len(splits.train) - 100
