"""Detection data (torch-free: numpy + OpenCV): the in-memory dataset, loaders for YOLO / COCO / WIDER FACE
labels, box-aware augmentation, and built-in sets that need no download."""

from edgekd.data.detection.augment import (
    Augmenter,
    adjust_brightness_contrast,
    clip_boxes,
    gaussian_blur,
    hflip,
    letterbox,
    letterbox_boxes,
    mosaic,
    random_scale_crop,
    unletterbox_boxes,
)
from edgekd.data.detection.builtin import (
    BUILTIN_DETECTION,
    face_composite,
    load_detection,
    real_face_photos,
    shapes,
)
from edgekd.data.detection.dataset import DetectionDataset
from edgekd.data.detection.formats import load_coco, load_wider_face, load_yolo, write_yolo_labels

__all__ = [
    "BUILTIN_DETECTION",
    "Augmenter",
    "DetectionDataset",
    "adjust_brightness_contrast",
    "clip_boxes",
    "face_composite",
    "gaussian_blur",
    "hflip",
    "letterbox",
    "letterbox_boxes",
    "load_coco",
    "load_detection",
    "load_wider_face",
    "load_yolo",
    "mosaic",
    "random_scale_crop",
    "real_face_photos",
    "shapes",
    "unletterbox_boxes",
    "write_yolo_labels",
]
