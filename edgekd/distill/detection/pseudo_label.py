"""Pseudo-label distillation, the seeds' YOLOv5x -> YOLOv5n recipe: a teacher detects objects on (unlabeled or
training) images and its detections become the student's labels.

Hard pseudo-labels keep detections scoring >= threshold as plain labels; soft ones keep them down to a lower
threshold and weight each box's heatmap-centre and box-regression loss by the teacher's confidence (Lee 2013,
"Pseudo-Label"; Xie et al. 2020 for soft targets). Any teacher works: our detectors, or a pre-trained face
detector from `edgekd.runtime.face_teachers` (RetinaFace, BlazeFace, Haar) mapped to our class list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from edgekd.data.detection.dataset import DetectionDataset

Detections = tuple[np.ndarray, np.ndarray, np.ndarray]


def pseudo_label(
    detect: Callable[[Sequence[np.ndarray]], list[Detections]],
    dataset: DetectionDataset,
    threshold: float = 0.5,
    soft: bool = False,
    class_map: dict[int, int] | None = None,
    name: str | None = None,
) -> DetectionDataset:
    """`dataset`'s images labelled with `detect(images)`; per-box weights in `info["weights"]` (soft) or ones.

    `class_map` maps teacher class ids to the student's (detections of unmapped classes are dropped).
    """
    detections = detect(dataset.images)
    boxes, ids, weights, kept = [], [], [], 0
    for b, s, c in detections:
        keep = s >= threshold
        if class_map is not None:
            keep &= np.isin(c, list(class_map))
            c = np.array([class_map.get(int(v), -1) for v in c], np.int64)
        boxes.append(b[keep])
        ids.append(c[keep])
        weights.append(s[keep].astype(np.float32) if soft else np.ones(int(keep.sum()), np.float32))
        kept += int(keep.sum())
    info = {**dataset.info, "weights": weights, "pseudo_labels": {"threshold": threshold, "soft": soft, "boxes": kept}}
    return DetectionDataset(
        list(dataset.images),
        boxes,
        ids,
        dataset.classes,
        name or f"{dataset.name}+pseudo",
        dataset.files,
        dict(dataset.skipped),
        info,
    )


def concat(first: DetectionDataset, second: DetectionDataset, name: str) -> DetectionDataset:
    """Two datasets as one, keeping per-box weights (ones where a dataset has none)."""

    def weights(ds):
        return ds.info.get("weights") or [np.ones(len(b), np.float32) for b in ds.boxes]

    return DetectionDataset(
        first.images + second.images,
        first.boxes + second.boxes,
        first.class_ids + second.class_ids,
        first.classes,
        name,
        info={"weights": weights(first) + weights(second)},
    )
