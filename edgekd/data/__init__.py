"""Datasets. Classification data is held in memory as uint8 NHWC arrays; loaders validate what they read
and raise DatasetError naming the path and the problem."""

from edgekd.data.classification import (
    BUILTIN_DATASETS,
    DatasetSplits,
    ImageDataset,
    load_dataset,
    split_labeled,
)

__all__ = ["BUILTIN_DATASETS", "DatasetSplits", "ImageDataset", "load_dataset", "split_labeled"]
