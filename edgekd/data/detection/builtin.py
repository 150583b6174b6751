"""Built-in detection sets that need no download, and `load_detection`, which also opens files on disk.

- `faces` / `faces-rgb`: the 100 real 25x25 face crops of `skimage.data.lfw_subset()` pasted onto
  backgrounds made of its 100 non-face crops, procedural clutter and face-free skimage photos. Train, val
  and test use disjoint face crops (70/15/15), so a score on test is measured on unseen faces.
- `shapes`: circles, squares, triangles and stars on cluttered backgrounds.
- `real_face_photos()`: skimage astronaut and camera and matplotlib's grace_hopper, which hold real faces
  and are therefore never used by the sets above: demos and evaluation only.

Boxes are exact (the pasted or drawn pixels). Each split draws from its own fixed random stream, so a
(seed, split) pair always gives the same images. scikit-image is imported only when a set is generated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import cv2
import numpy as np

from edgekd.data.classification import read_image
from edgekd.data.detection.augment import adjust_brightness_contrast
from edgekd.data.detection.dataset import DetectionDataset
from edgekd.data.detection.formats import load_coco, load_wider_face, load_yolo
from edgekd.errors import DatasetError

SPLITS = ("train", "val", "test")
DEFAULT_IMAGES = {"train": 1000, "val": 200, "test": 200}
# Indexes into lfw_subset()'s 100 face crops; disjoint so val/test faces are never seen in training.
FACE_IDS = {"train": range(0, 70), "val": range(70, 85), "test": range(85, 100)}
# skimage photos with no human face, used as backgrounds. Never add astronaut or camera (or matplotlib's
# grace_hopper): they show real faces and are kept for evaluation in `real_face_photos`.
BACKGROUND_PHOTOS = (
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "stereo_motorcycle",
    "brick",
    "grass",
    "gravel",
    "moon",
    "text",
    "page",
    "clock",
)
FACE_PHOTOS = ("astronaut", "camera", "grace_hopper")
FACE_SIDE_RANGE_96 = (12, 48)  # face box side in pixels at 96x96, scaled with the image size
FACE_COUNT_PROBS = (0.15, 0.35, 0.3, 0.2)  # P(0), P(1), P(2), P(3) faces in an image
SHAPE_CLASSES = ["circle", "square", "triangle", "star"]
SHAPE_SIDE_RANGE_96 = (12, 40)
PERSON_CONTEXT_PROB = 0.6  # a face drawn on a head and shoulders (else floating, as a sticker or a poster)
FACELESS_PERSON_PROB = 0.25  # a head and shoulders with no face: context alone must not fire the detector
COLLAR_PROB = 0.5  # a person wears a visible shirt collar (and maybe a tie) below the face
MAX_OVERLAP_IOU = 0.1  # objects may touch a little, as in real scenes, but not hide each other


# ---------------------------------------------------------------- sources


@lru_cache(maxsize=1)
def _lfw_crops() -> tuple[np.ndarray, np.ndarray]:
    """(faces, non_faces), each uint8 (100, 25, 25)."""
    from skimage import data

    crops = np.round(data.lfw_subset() * 255).astype(np.uint8)
    return crops[:100], crops[100:]


@lru_cache(maxsize=2)
def _background_photos(channels: int) -> tuple[np.ndarray, ...]:
    """The face-free photos as uint8 H x W x channels, shrunk to at most 320 px (crops stay cheap)."""
    from skimage import data

    photos = []
    for name in BACKGROUND_PHOTOS:
        photo = getattr(data, name)()
        photo = photo[0] if isinstance(photo, tuple) else photo  # stereo_motorcycle: (left, right, disparity)
        photo = photo[..., None] if photo.ndim == 2 else photo[..., :3]
        if channels == 1 and photo.shape[-1] == 3:
            photo = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)[..., None]
        elif channels == 3 and photo.shape[-1] == 1:
            photo = np.repeat(photo, 3, axis=-1)
        shrink = 320 / max(photo.shape[:2])
        if shrink < 1:
            photo = cv2.resize(photo, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        photos.append(photo.reshape(photo.shape[0], photo.shape[1], channels))
    return tuple(photos)


def real_face_photos() -> list[tuple[str, np.ndarray]]:
    """(name, RGB uint8 image) for astronaut, camera (the cameraman) and grace_hopper.

    These hold real faces and no built-in training set uses them; they come without boxes and serve
    demos and eyeballing a trained detector only.
    """
    import matplotlib.cbook
    from skimage import data

    hopper = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    return [
        ("astronaut", data.astronaut()),
        ("camera", np.repeat(data.camera()[..., None], 3, axis=-1)),
        ("grace_hopper", read_image(hopper, 3)),
    ]


# ---------------------------------------------------------------- drawing helpers


def _random_colour(rng: np.random.Generator, channels: int, low: int = 0, high: int = 256) -> tuple:
    return tuple(int(v) for v in rng.integers(low, high, channels))


def _tint(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A gray H x W x 1 image as RGB multiplied by a random colour."""
    tint = rng.uniform(0.55, 1.0, 3)
    return (gray.astype(np.float32) * tint).astype(np.uint8)


def _gradient(size: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    """A linear blend between two random colours along a random direction."""
    angle = rng.uniform(0, 2 * np.pi)
    axis = np.linspace(-1, 1, size, dtype=np.float32)
    t = (np.cos(angle) * axis[None, :] + np.sin(angle) * axis[:, None]) / 2.9 + 0.5
    start = np.float32(_random_colour(rng, channels))
    end = np.float32(_random_colour(rng, channels))
    return (start + t[..., None] * (end - start)).astype(np.uint8)


def _add_clutter(canvas: np.ndarray, rng: np.random.Generator, count: int, solid: bool) -> None:
    """Draw random lines, rectangles and ellipses (outlines only unless `solid`) onto `canvas`."""
    size, channels = canvas.shape[0], canvas.shape[-1]
    for _ in range(count):
        colour = _random_colour(rng, channels)
        kind = rng.integers(3)
        p1, p2 = rng.integers(-size // 4, size + size // 4, (2, 2))
        thickness = -1 if solid and rng.random() < 0.5 else int(rng.integers(1, 4))
        if kind == 0:
            cv2.line(canvas, tuple(map(int, p1)), tuple(map(int, p2)), colour, int(rng.integers(1, 4)))
        elif kind == 1:
            cv2.rectangle(canvas, tuple(map(int, p1)), tuple(map(int, p2)), colour, thickness)
        else:
            axes = tuple(int(a) for a in rng.integers(2, size // 3, 2))
            tilt = float(rng.uniform(0, 180))
            cv2.ellipse(canvas, tuple(map(int, p1)), axes, tilt, 0, 360, colour, thickness)


def _add_noise(canvas: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    noisy = canvas.astype(np.float32) + rng.normal(0, sigma, canvas.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _clutter_background(size: int, channels: int, rng: np.random.Generator, solid: bool) -> np.ndarray:
    canvas = np.ascontiguousarray(_gradient(size, channels, rng))
    _add_clutter(canvas, rng, int(rng.integers(2, 10)), solid)
    return _add_noise(canvas, rng, rng.uniform(0, 12))


def _photo_background(size: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    """A random square crop of a face-free photo, resized to `size`."""
    photos = _background_photos(channels)
    photo = photos[rng.integers(len(photos))]
    height, width = photo.shape[:2]
    side = int(rng.uniform(0.25, 1.0) * min(height, width))
    y, x = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    crop = cv2.resize(photo[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_AREA)
    crop = crop.reshape(size, size, channels)
    return crop[:, ::-1] if rng.random() < 0.5 else crop


def _tiled_background(size: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    """lfw_subset's non-face crops (hard negatives: hands, walls, bits of clothing) tiled at random sizes."""
    non_faces = _lfw_crops()[1]
    cell = int(rng.integers(size // 4, size // 2 + 1))
    cells = -(-size // cell)
    picks = non_faces[rng.integers(len(non_faces), size=cells * cells)]
    tiles = [cv2.resize(p, (cell, cell), interpolation=cv2.INTER_LINEAR) for p in picks]
    grid = np.vstack([np.hstack(tiles[r * cells : (r + 1) * cells]) for r in range(cells)])[:size, :size, None]
    return _tint(grid, rng) if channels == 3 else grid


def _place(sides: list[int], size: int, rng: np.random.Generator, tries: int = 30) -> list[tuple[int, int, int]]:
    """(x, y, side) for squares of the given sides, overlapping each other by at most MAX_OVERLAP_IOU;
    a square that finds no room is left out."""
    placed: list[tuple[int, int, int]] = []
    for side in sides:
        for _ in range(tries):
            x, y = int(rng.integers(0, size - side + 1)), int(rng.integers(0, size - side + 1))
            if all(_iou((x, y, side), other) <= MAX_OVERLAP_IOU for other in placed):
                placed.append((x, y, side))
                break
    return placed


def _iou(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    (ax, ay, aside), (bx, by, bside) = a, b
    overlap_w = max(0, min(ax + aside, bx + bside) - max(ax, bx))
    overlap_h = max(0, min(ay + aside, by + bside) - max(ay, by))
    inter = overlap_w * overlap_h
    return inter / (aside * aside + bside * bside - inter)


def _random_sides(count: int, side_range_96: tuple[int, int], size: int, rng: np.random.Generator) -> list[int]:
    """Log-uniform sides, so small objects are as common as large ones; scaled from a 96 px image."""
    low, high = (s * size / 96 for s in side_range_96)
    return [max(4, round(s)) for s in np.exp(rng.uniform(np.log(low), np.log(high), count))]


def _stream(seed: int, split: str) -> np.random.Generator:
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return np.random.default_rng([seed, SPLITS.index(split)])


# ---------------------------------------------------------------- face composite


def _face_background(size: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    kind = rng.choice(3, p=[0.25, 0.35, 0.4])
    if kind == 0:
        return _tiled_background(size, channels, rng)
    if kind == 1:
        return _clutter_background(size, channels, rng, solid=True)
    canvas = np.ascontiguousarray(_photo_background(size, channels, rng))
    if rng.random() < 0.3:
        _add_clutter(canvas, rng, int(rng.integers(1, 4)), solid=True)
    return canvas


def _face_patch(face: np.ndarray, side: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    """An LFW crop resized to `side`, photometrically jittered, sometimes mirrored, skin-tinted for RGB."""
    shrinking = side < face.shape[0]
    patch = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    if not shrinking and rng.random() < 0.5:
        # Upscaled 25 px crops are softer than anything else in the image; unsharp masking stops the
        # detector from learning "blurry square = face" (real faces in photos are sharp).
        patch = cv2.addWeighted(patch, 1.6, cv2.GaussianBlur(patch, (0, 0), 1.0), -0.6, 0)
    patch = adjust_brightness_contrast(patch, rng.uniform(-25, 25), rng.uniform(0.75, 1.25))[..., None]
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    if channels == 3:
        # Gray faces tinted towards skin tones: red strongest, blue weakest.
        tint = np.float32([1.0, rng.uniform(0.75, 0.95), rng.uniform(0.55, 0.85)]) * rng.uniform(0.85, 1.1)
        patch = np.clip(patch.astype(np.float32) * tint, 0, 255).astype(np.uint8)
    return patch


def _oval_mask(side: int, rng: np.random.Generator) -> np.ndarray:
    """A soft-edged oval filling most of a side x side square: pasted faces get no square outline."""
    half_width = rng.uniform(0.47, 0.6) * side
    half_height = half_width * rng.uniform(1.0, 1.15)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) + 0.5
    radius = np.sqrt(((xx - side / 2) / half_width) ** 2 + ((yy - side / 2) / half_height) ** 2)
    return np.clip((1.0 - radius) / 0.15 + 0.5, 0, 1)[..., None]


def _draw_person(canvas: np.ndarray, x: int, y: int, side: int, rng: np.random.Generator, skin: tuple) -> None:
    """Head (hair oval), neck and shoulders around the face square (x, y, side), in flat colours.

    Real faces sit on a head and a body; without this context a detector trained on floating face crops
    fires on collars and ties. Also drawn without a face, as a negative (a person seen from behind)."""
    height, channels = canvas.shape[0], canvas.shape[-1]
    cx = x + side / 2
    shoulder = rng.uniform(0.9, 1.3)
    body = [(-0.22, 0.85), (0.22, 0.85), (0.25, 1.12), (shoulder, 1.35), (1.4, None), (-1.4, None), (-shoulder, 1.35)]
    body.append((-0.25, 1.12))
    points = [(cx + dx * side, y + dy * side if dy is not None else height + side) for dx, dy in body]
    cv2.fillPoly(canvas, [np.int32(points)], _random_colour(rng, channels, 0, 200))
    neck = [(cx - 0.2 * side, y + 0.8 * side), (cx + 0.2 * side, y + 0.8 * side)]
    neck += [(cx + 0.2 * side, y + 1.2 * side), (cx - 0.2 * side, y + 1.2 * side)]
    cv2.fillPoly(canvas, [np.int32(neck)], skin)
    if rng.random() < COLLAR_PROB:
        _draw_collar(canvas, cx, y + 1.15 * side, side, rng)
    hair = _random_colour(rng, channels, 0, 120) if rng.random() < 0.8 else _random_colour(rng, channels)
    centre = (int(cx), int(y + side * rng.uniform(0.35, 0.45)))
    axes = (int(side * rng.uniform(0.55, 0.7)), int(side * rng.uniform(0.6, 0.75)))
    cv2.ellipse(canvas, centre, axes, 0, 0, 360, hair, -1)


def _draw_collar(canvas: np.ndarray, cx: float, top: float, side: int, rng: np.random.Generator) -> None:
    """A light shirt V under the chin, often with a dark tie: the high-contrast pattern that tiny face
    detectors mistake for a face when they have never seen one below a real face."""
    channels = canvas.shape[-1]
    half, depth = side * rng.uniform(0.25, 0.45), side * rng.uniform(0.6, 1.1)
    shirt = [(cx - half, top), (cx + half, top), (cx, top + depth)]
    cv2.fillPoly(canvas, [np.int32(shirt)], _random_colour(rng, channels, 170, 256))
    if rng.random() < 0.6:
        tie_half = side * rng.uniform(0.06, 0.12)
        tie = [
            (cx - tie_half, top),
            (cx + tie_half, top),
            (cx + tie_half * 1.5, top + depth),
            (cx - tie_half * 1.5, top + depth),
        ]
        cv2.fillPoly(canvas, [np.int32(tie)], _random_colour(rng, channels, 0, 90))


def _paste(canvas: np.ndarray, patch: np.ndarray, x: int, y: int, rng: np.random.Generator) -> None:
    side = patch.shape[0]
    mask = _oval_mask(side, rng)
    region = canvas[y : y + side, x : x + side].astype(np.float32)
    canvas[y : y + side, x : x + side] = (mask * patch + (1 - mask) * region).astype(np.uint8)


def face_composite(
    split: str = "train", size: int = 96, channels: int = 1, n_images: int | None = None, seed: int = 0
) -> DetectionDataset:
    """Real LFW face crops composited onto face-free backgrounds; 0-3 faces per image, class "face".

    Face sides run from 12 to 48 px at size 96 (proportionally otherwise). `info["face_ids"]` lists the
    lfw_subset indexes used, all within FACE_IDS[split].
    """
    if channels not in (1, 3):
        raise DatasetError(f"channels must be 1 or 3, got {channels}")
    rng = _stream(seed, split)
    faces = _lfw_crops()[0]
    allowed = np.array(FACE_IDS[split])
    images, boxes, class_ids, used = [], [], [], set()
    for _ in range(DEFAULT_IMAGES[split] if n_images is None else n_images):
        canvas = np.ascontiguousarray(_face_background(size, channels, rng))
        count = rng.choice(len(FACE_COUNT_PROBS), p=FACE_COUNT_PROBS)
        if rng.random() < FACELESS_PERSON_PROB:
            x, y, side = _place(_random_sides(1, FACE_SIDE_RANGE_96, size, rng), size, rng)[0]
            _draw_person(canvas, x, y, side, rng, _random_colour(rng, channels, 100))
        placed = _place(_random_sides(count, FACE_SIDE_RANGE_96, size, rng), size, rng)
        face_ids = [int(rng.choice(allowed)) for _ in placed]
        patches = [_face_patch(faces[i], side, channels, rng) for i, (_, _, side) in zip(face_ids, placed, strict=True)]
        # Bodies first, faces last: a body must never cover another face.
        for (x, y, side), patch in zip(placed, patches, strict=True):
            if rng.random() < PERSON_CONTEXT_PROB:
                _draw_person(canvas, x, y, side, rng, tuple(int(v) for v in patch[side * 3 // 4, side // 2]))
        image_boxes = []
        for (x, y, side), patch in zip(placed, patches, strict=True):
            _paste(canvas, patch, x, y, rng)
            image_boxes.append([x, y, x + side, y + side])
        used.update(face_ids)
        images.append(canvas)
        boxes.append(image_boxes)
        class_ids.append([0] * len(image_boxes))
    name = "faces" if channels == 1 else "faces-rgb"
    info = {
        "source": "skimage.data.lfw_subset faces on face-free backgrounds",
        "face_ids": sorted(used),
        "background_photos": list(BACKGROUND_PHOTOS),
        "seed": seed,
        "size": size,
    }
    return DetectionDataset(images, boxes, class_ids, ["face"], f"{name}/{split}", info=info)


# ---------------------------------------------------------------- shapes


def _shape_points(kind: str, cx: float, cy: float, radius: float, angle: float) -> np.ndarray:
    """Integer polygon vertices of a square, triangle or star inscribed in the given circle."""
    if kind == "square":
        angles, radii = angle + np.pi / 4 + np.arange(4) * np.pi / 2, np.full(4, radius)
    elif kind == "triangle":
        angles, radii = angle + np.arange(3) * 2 * np.pi / 3, np.full(3, radius)
    else:  # five-pointed star: outer and inner vertices alternate
        angles, radii = angle + np.arange(10) * np.pi / 5, np.where(np.arange(10) % 2, 0.45 * radius, radius)
    return np.round(np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)).astype(np.int32)


def _draw_shape(canvas: np.ndarray, kind: str, x: int, y: int, side: int, rng: np.random.Generator) -> list[int]:
    """Draw one filled shape inside the square (x, y, side); returns its exact box."""
    radius = (side - 1) // 2
    cx, cy = x + radius, y + radius
    region = canvas[y : y + side, x : x + side]
    # Contrast with what lies beneath: dark shapes on light ground, light on dark.
    dark = region.mean() > 127
    colour = _random_colour(rng, canvas.shape[-1], *((0, 100) if dark else (156, 256)))
    if kind == "circle":
        cv2.circle(canvas, (cx, cy), radius, colour, -1)
        return [cx - radius, cy - radius, cx + radius + 1, cy + radius + 1]
    points = _shape_points(kind, cx, cy, radius, rng.uniform(0, 2 * np.pi))
    cv2.fillPoly(canvas, [points], colour)
    # fillPoly paints the vertex pixels, so the box spans min..max inclusive.
    return [*points.min(0).tolist(), *(points.max(0) + 1).tolist()]


def _shape_background(size: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    """Clutter without filled blobs (they would look like the objects), sometimes over a muted photo."""
    canvas = _clutter_background(size, channels, rng, solid=False)
    if rng.random() < 0.3:
        photo = np.ascontiguousarray(_photo_background(size, channels, rng))
        canvas = cv2.addWeighted(canvas, 0.6, photo, 0.4, 0)
    return canvas.reshape(size, size, channels)


def shapes(
    split: str = "train", size: int = 96, channels: int = 3, n_images: int | None = None, seed: int = 0
) -> DetectionDataset:
    """Filled circles, squares, triangles and stars (random colour, size, rotation), 1-4 per image."""
    if channels not in (1, 3):
        raise DatasetError(f"channels must be 1 or 3, got {channels}")
    rng = _stream(seed, split)
    images, boxes, class_ids = [], [], []
    for _ in range(DEFAULT_IMAGES[split] if n_images is None else n_images):
        canvas = np.ascontiguousarray(_shape_background(size, channels, rng))
        count = int(rng.integers(1, 5))
        image_boxes, image_ids = [], []
        for x, y, side in _place(_random_sides(count, SHAPE_SIDE_RANGE_96, size, rng), size, rng):
            cls = int(rng.integers(len(SHAPE_CLASSES)))
            image_boxes.append(_draw_shape(canvas, SHAPE_CLASSES[cls], x, y, side, rng))
            image_ids.append(cls)
        images.append(canvas)
        boxes.append(image_boxes)
        class_ids.append(image_ids)
    return DetectionDataset(
        images,
        boxes,
        class_ids,
        list(SHAPE_CLASSES),
        f"shapes/{split}",
        info={"source": "synthetic shapes", "seed": seed, "size": size},
    )


# ---------------------------------------------------------------- registry and entry point

BUILTIN_DETECTION: dict[str, Callable[..., DetectionDataset]] = {
    "faces": partial(face_composite, channels=1),
    "faces-rgb": partial(face_composite, channels=3),
    "shapes": shapes,
}


def _images_dir_near(label_file: Path, split: str) -> Path:
    """Where images usually sit beside a COCO json or WIDER txt; the label file's folder as a last resort."""
    here = label_file.parent
    for candidate in (here / "images", here.parent / "images", here.parent / f"WIDER_{split}" / "images"):
        if candidate.is_dir():
            return candidate
    return here


def load_detection(spec: str | Path, split: str = "train", lenient: bool = False, seed: int = 0) -> DetectionDataset:
    """A built-in by name (`faces`, `faces-rgb`, `shapes`), an Ultralytics data.yaml, a YOLO folder, a
    COCO .json or a WIDER FACE .txt. For json and txt the images folder is guessed (`images/` beside the
    file or its parent, or WIDER's `WIDER_<split>/images`); call `load_coco` / `load_wider_face` to name it.
    """
    if str(spec) in BUILTIN_DETECTION:
        return BUILTIN_DETECTION[str(spec)](split, seed=seed)
    path = Path(spec)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder, and not a built-in ({', '.join(BUILTIN_DETECTION)})")
    if path.is_dir() or path.suffix in (".yaml", ".yml"):
        return load_yolo(path, split, lenient)
    if path.suffix == ".json":
        return load_coco(path, _images_dir_near(path, split), lenient)
    if path.suffix == ".txt":
        return load_wider_face(path, _images_dir_near(path, split), lenient)
    raise DatasetError(f"{path}: not a data.yaml, YOLO folder, COCO .json or WIDER FACE .txt")


@dataclass
class DetectionSplits:
    train: DetectionDataset
    val: DetectionDataset
    test: DetectionDataset
    name: str

    @property
    def channels(self) -> int:
        return self.train.images[0].shape[-1]


def load_detection_splits(data: str) -> DetectionSplits:
    train = load_detection(data, "train")
    val = load_detection(data, "val")
    try:
        test = load_detection(data, "test")
    except DatasetError:
        test = val  # many YOLO sets ship train/val only
    return DetectionSplits(train, val, test, Path(str(data)).stem if str(data) not in BUILTIN_DETECTION else data)
