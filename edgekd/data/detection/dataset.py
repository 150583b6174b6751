"""The in-memory detection dataset: images of any size, each with its boxes and class ids.

Boxes are float32 (n, 4) `x1, y1, x2, y2` in pixels, measured on pixel edges: an object filling columns
10..19 has x1 = 10, x2 = 20. Class ids are int64 (n,) indexes into `classes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgekd.errors import DatasetError


@dataclass
class DetectionDataset:
    """Images (uint8 H x W x C, RGB or gray with C = 1) with per-image boxes and class ids.

    `files` names each image (its path for loaded data), `skipped` counts what a lenient loader left out
    by reason, and `info` records provenance (e.g. which face identities a built-in set used).
    """

    images: list[np.ndarray]
    boxes: list[np.ndarray]
    class_ids: list[np.ndarray]
    classes: list[str]
    name: str = ""
    files: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.images:
            raise DatasetError(f"{self.name}: dataset is empty")
        if not len(self.images) == len(self.boxes) == len(self.class_ids):
            raise DatasetError(
                f"{self.name}: {len(self.images)} images but {len(self.boxes)} box arrays and "
                f"{len(self.class_ids)} class-id arrays"
            )
        if self.files and len(self.files) != len(self.images):
            raise DatasetError(f"{self.name}: {len(self.files)} file names for {len(self.images)} images")
        self.boxes = [np.asarray(b, np.float32).reshape(-1, 4) for b in self.boxes]
        self.class_ids = [np.asarray(c, np.int64).reshape(-1) for c in self.class_ids]
        for i, (image, boxes, ids) in enumerate(zip(self.images, self.boxes, self.class_ids, strict=True)):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] not in (1, 3):
                raise DatasetError(f"{self.name}: image {i} must be uint8 H x W x 1|3, got {image.dtype} {image.shape}")
            if len(boxes) != len(ids):
                raise DatasetError(f"{self.name}: image {i} has {len(boxes)} boxes but {len(ids)} class ids")
            if ids.size and (ids.min() < 0 or ids.max() >= len(self.classes)):
                raise DatasetError(f"{self.name}: image {i} has class id outside 0..{len(self.classes) - 1}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_boxes(self) -> int:
        return sum(len(b) for b in self.boxes)

    def file_name(self, index: int) -> str:
        return self.files[index] if self.files else f"{self.name or 'image'}/{index:06d}.png"

    def subset(self, index, name: str | None = None) -> DetectionDataset:
        """The images at `index` (an index array, a list of ints or a boolean mask)."""
        chosen = np.arange(len(self))[np.asarray(index)].reshape(-1)
        return DetectionDataset(
            [self.images[i] for i in chosen],
            [self.boxes[i] for i in chosen],
            [self.class_ids[i] for i in chosen],
            self.classes,
            name or self.name,
            [self.files[i] for i in chosen] if self.files else [],
            dict(self.skipped),
            dict(self.info),
        )

    def to_coco(self) -> dict:
        """Ground truth as a COCO dict, for pycocotools: `gt = COCO(); gt.dataset = d; gt.createIndex()`.

        Image ids are dataset indexes and category ids are class ids, so detections map over directly.
        Annotation ids start at 1: COCOeval treats a matched ground-truth id of 0 as unmatched.
        """
        images, annotations = [], []
        for i, (image, boxes, ids) in enumerate(zip(self.images, self.boxes, self.class_ids, strict=True)):
            images.append(
                {"id": i, "file_name": self.file_name(i), "height": int(image.shape[0]), "width": int(image.shape[1])}
            )
            for (x1, y1, x2, y2), cls in zip(boxes.tolist(), ids.tolist(), strict=True):
                w, h = x2 - x1, y2 - y1
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": i,
                        "category_id": cls,
                        "bbox": [x1, y1, w, h],
                        "area": w * h,
                        "iscrowd": 0,
                    }
                )
        categories = [{"id": k, "name": name} for k, name in enumerate(self.classes)]
        return {"images": images, "annotations": annotations, "categories": categories}
