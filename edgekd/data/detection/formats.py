"""Detection labels on disk: YOLO txt (with an Ultralytics data.yaml or a plain folder), COCO json and
WIDER FACE txt.

Every loader checks what it reads. A malformed label (wrong number of fields, a non-numeric field, a
class id out of range, a box of non-positive size or outside the image) or a missing or corrupt image
raises DatasetError naming the file and line (for COCO json: the annotation's index and id). With
`lenient=True` the bad label or image is skipped instead, counted by reason in `dataset.skipped`, and
one warning sums the skips up. Broken structure (unparsable json or yaml, a WIDER count line that is not
a number) always raises: there is no telling what the following lines mean.
"""

from __future__ import annotations

import json
import math
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import yaml

from edgekd.data.classification import IMAGE_SUFFIXES, read_image
from edgekd.data.detection.dataset import DetectionDataset
from edgekd.errors import DatasetError

# Exported labels often overhang the image by a rounding error; such boxes are clipped, not rejected.
EDGE_TOLERANCE_PX = 1.0

WRONG_FIELD_COUNT = "wrong number of fields"
NON_NUMERIC = "non-numeric field"
BAD_CLASS = "class id out of range"
EMPTY_BOX = "box of non-positive size"
OUTSIDE_IMAGE = "box outside the image"
UNKNOWN_IMAGE = "annotation for an unknown image id"
MISSING_IMAGE = "missing image"
CORRUPT_IMAGE = "corrupt image"


class _Problems:
    """Raises DatasetError at the first malformed label, or (lenient) counts them by reason."""

    def __init__(self, lenient: bool):
        self.lenient = lenient
        self.counts: Counter[str] = Counter()

    def __call__(self, reason: str, where: str, detail: str = "") -> None:
        if not self.lenient:
            raise DatasetError(f"{where}: {reason}" + (f" ({detail})" if detail else ""))
        self.counts[reason] += 1

    def summarise(self, source: Path) -> dict[str, int]:
        if self.counts:
            reasons = ", ".join(f"{n} {reason}" for reason, n in self.counts.most_common())
            warnings.warn(
                f"{source}: skipped {sum(self.counts.values())} malformed label(s) or image(s): {reasons}", stacklevel=4
            )
        return dict(self.counts)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc


def _load_image(path: Path, where: str, problems: _Problems) -> np.ndarray | None:
    if not path.is_file():
        problems(MISSING_IMAGE, where, str(path))
        return None
    try:
        return read_image(path, None)
    except DatasetError:
        problems(CORRUPT_IMAGE, where, str(path))
        return None


def _numbers(fields: list[str], where: str, problems: _Problems) -> list[float] | None:
    try:
        values = [float(f) for f in fields]
    except ValueError:
        values = None
    if values is None or not all(math.isfinite(v) for v in values):
        problems(NON_NUMERIC, where, " ".join(fields))
        return None
    return values


def _class_id(value: float, num_classes: int | None, where: str, problems: _Problems) -> int | None:
    if not value.is_integer() or value < 0 or (num_classes is not None and value >= num_classes):
        limit = f"0..{num_classes - 1}" if num_classes else "a non-negative integer"
        problems(BAD_CLASS, where, f"{value:g} is not {limit}")
        return None
    return int(value)


def _checked_box(box: list[float], width: int, height: int, where: str, problems: _Problems) -> list[float] | None:
    """The box clipped to the image, or None (after reporting) if it is empty or lies outside."""
    x1, y1, x2, y2 = box
    described = f"x1={x1:g} y1={y1:g} x2={x2:g} y2={y2:g}"
    if x2 <= x1 or y2 <= y1:
        problems(EMPTY_BOX, where, described)
        return None
    tol = EDGE_TOLERANCE_PX
    if x1 < -tol or y1 < -tol or x2 > width + tol or y2 > height + tol:
        problems(OUTSIDE_IMAGE, where, f"{described}, image {width}x{height}")
        return None
    clipped = [max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height))]
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        problems(EMPTY_BOX, where, f"{described} once clipped to the image")
        return None
    return clipped


class _Collector:
    """Gathers images with their boxes and builds the dataset, with the skip summary."""

    def __init__(self, lenient: bool):
        self.problems = _Problems(lenient)
        self.images, self.boxes, self.class_ids, self.files = [], [], [], []

    def add(self, image: np.ndarray, boxes: list[list[float]], class_ids: list[int], file: Path) -> None:
        self.images.append(image)
        self.boxes.append(np.asarray(boxes, np.float32).reshape(-1, 4))
        self.class_ids.append(np.asarray(class_ids, np.int64))
        self.files.append(str(file))

    def build(self, classes: list[str], name: str, source: Path) -> DetectionDataset:
        skipped = self.problems.summarise(source)
        if not self.images:
            raise DatasetError(f"{source}: no usable images" + (f" (skipped: {skipped})" if skipped else ""))
        return DetectionDataset(
            self.images, self.boxes, self.class_ids, classes, name, self.files, skipped, {"source": str(source)}
        )


# ---------------------------------------------------------------- YOLO


def _label_path(image_path: Path) -> Path:
    """Ultralytics' rule: the last `images` folder in the path becomes `labels`, the suffix `.txt`."""
    parts = list(image_path.parts)
    if "images" in parts[:-1]:
        parts[len(parts) - 2 - parts[-2::-1].index("images")] = "labels"
    return Path(*parts).with_suffix(".txt")


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _list_split(entry, root: Path, where: str) -> list[tuple[Path, str]]:
    """(image path, where to blame if it is missing) for a data.yaml split: folder(s) or list file(s)."""
    listed = []
    for item in entry if isinstance(entry, list) else [entry]:
        path = Path(str(item))
        path = path if path.is_absolute() else root / path
        if path.is_dir():
            listed += [(p, str(p)) for p in _images_in(path)]
        elif path.is_file() and path.suffix == ".txt":
            for line_no, line in enumerate(_read_lines(path), 1):
                if line.strip():
                    image = path.parent / line.strip()  # an absolute line stays absolute
                    listed.append((image, f"{path}:{line_no}"))
        else:
            raise DatasetError(f"{where}: split path {path} is neither a folder nor a .txt list of images")
    return listed


def _class_names(names, where: str) -> list[str]:
    if isinstance(names, list):
        return [str(n) for n in names]
    if isinstance(names, dict):
        try:
            by_id = {int(k): str(v) for k, v in names.items()}
        except ValueError as exc:
            raise DatasetError(f"{where}: 'names' keys must be class ids 0, 1, ...") from exc
        if sorted(by_id) != list(range(len(by_id))):
            raise DatasetError(f"{where}: 'names' ids {sorted(by_id)} are not 0..{len(by_id) - 1}")
        return [by_id[k] for k in range(len(by_id))]
    raise DatasetError(f"{where}: 'names' must be a list or a mapping id -> name, got {type(names).__name__}")


def _parse_data_yaml(path: Path, split: str) -> tuple[list[tuple[Path, str]], list[str], Path]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DatasetError(f"{path}: cannot read data.yaml ({exc})") from exc
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: data.yaml must be a mapping with 'train', 'val' and 'names'")
    # Ultralytics resolves a relative `path` elsewhere; relative to the yaml keeps a dataset self-contained.
    root = Path(str(data.get("path") or "."))
    root = root if root.is_absolute() else path.parent / root
    if "names" in data:
        classes = _class_names(data["names"], str(path))
    elif isinstance(data.get("nc"), int):
        classes = [str(i) for i in range(data["nc"])]
    else:
        raise DatasetError(f"{path}: needs 'names' (a list, or a mapping id -> name)")
    if isinstance(data.get("nc"), int) and data["nc"] != len(classes):
        raise DatasetError(f"{path}: nc is {data['nc']} but 'names' lists {len(classes)} classes")
    if not data.get(split):
        raise DatasetError(f"{path}: has no '{split}' split")
    return _list_split(data[split], root, str(path)), classes, root


def _folder_split(root: Path, split: str) -> list[tuple[Path, str]]:
    for folder in (root / "images" / split, root / split / "images"):
        if folder.is_dir():
            return [(p, str(p)) for p in _images_in(folder)]
    flat = [p for p in (root / "images").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
    if flat and split == "train":
        return [(p, str(p)) for p in sorted(flat)]
    if flat:
        raise DatasetError(
            f"{root}: images/ is a single split (no images/{split} or {split}/images); "
            f"load it as 'train' and split it with DetectionDataset.subset"
        )
    raise DatasetError(f"{root}: no YOLO images found (expected images/{split}/, {split}/images/ or images/)")


def _read_yolo_labels(
    path: Path, width: int, height: int, num_classes: int | None, problems: _Problems
) -> tuple[list[list[float]], list[int]]:
    boxes, class_ids = [], []
    if not path.is_file():
        return boxes, class_ids  # no label file: a background image, as in Ultralytics
    for line_no, line in enumerate(_read_lines(path), 1):
        fields = line.split()
        where = f"{path}:{line_no}"
        if not fields:
            continue
        if len(fields) != 5:
            problems(WRONG_FIELD_COUNT, where, f"expected 5 (class cx cy w h), got {len(fields)}")
            continue
        values = _numbers(fields, where, problems)
        if values is None:
            continue
        cls = _class_id(values[0], num_classes, where, problems)
        if cls is None:
            continue
        cx, cy, w, h = values[1:]
        box = [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height]
        box = _checked_box(box, width, height, where, problems)
        if box is not None:
            boxes.append(box)
            class_ids.append(cls)
    return boxes, class_ids


def load_yolo(root_or_data_yaml: str | Path, split: str = "train", lenient: bool = False) -> DetectionDataset:
    """YOLO labels (`labels/<stem>.txt`, lines `class cx cy w h` normalised to 0..1).

    Takes an Ultralytics data.yaml (`path`, `train`/`val`/`test` as folders or .txt image lists, `names` as
    a list or id -> name mapping; a relative `path` is relative to the yaml) or a folder laid out as
    images/<split>/ + labels/<split>/, <split>/images/ + <split>/labels/, or a flat images/ + labels/ (a
    single 'train' split). A folder holding data.yaml is read through it; otherwise class names come from
    classes.txt (one per line) or, failing that, are the ids found. An image with no label file has no
    objects.
    """
    path = Path(root_or_data_yaml)
    if path.is_dir() and (path / "data.yaml").is_file():
        path = path / "data.yaml"
    if path.is_file():
        listed, classes, root = _parse_data_yaml(path, split)
    elif path.is_dir():
        root, listed = path, _folder_split(path, split)
        names_file = path / "classes.txt"
        classes = [n.strip() for n in _read_lines(names_file) if n.strip()] if names_file.is_file() else None
    else:
        raise DatasetError(f"{path}: no such data.yaml or dataset folder")
    if not listed:
        raise DatasetError(f"{path}: the '{split}' split lists no images")
    collector = _Collector(lenient)
    for image_path, where in listed:
        image = _load_image(image_path, where, collector.problems)
        if image is not None:
            boxes, ids = _read_yolo_labels(
                _label_path(image_path),
                image.shape[1],
                image.shape[0],
                len(classes) if classes else None,
                collector.problems,
            )
            collector.add(image, boxes, ids, image_path)
    if classes is None:
        found = max((int(c.max()) for c in collector.class_ids if c.size), default=0)
        classes = [str(i) for i in range(found + 1)]
    return collector.build(classes, f"{root.name}/{split}", path)


def write_yolo_labels(path: str | Path, boxes: np.ndarray, class_ids: np.ndarray, image_size: tuple[int, int]) -> None:
    """Write one YOLO label file; `boxes` are pixel x1, y1, x2, y2 and `image_size` is (width, height)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    class_ids = np.asarray(class_ids).reshape(-1)
    if len(boxes) != len(class_ids):
        raise DatasetError(f"{path}: {len(boxes)} boxes but {len(class_ids)} class ids")
    width, height = image_size
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2 / (width, height)
    extent = (boxes[:, 2:] - boxes[:, :2]) / (width, height)
    lines = [
        f"{int(c)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n"
        for c, (cx, cy), (w, h) in zip(class_ids, centre, extent, strict=True)
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8")


# ---------------------------------------------------------------- COCO


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read COCO json ({exc})") from exc
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("categories"), list)
    ):
        raise DatasetError(f"{path}: a COCO json needs 'images' and 'categories' lists")
    return data


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def load_coco(json_path: str | Path, images_dir: str | Path, lenient: bool = False) -> DetectionDataset:
    """COCO detection json (`bbox` = [x, y, w, h] in pixels); images are `images_dir/<file_name>`.

    Categories become classes in order of their id. Crowd regions (iscrowd = 1) are left out: they mark
    areas to ignore, not objects. Problems are located as `annotations[<index>] (id <id>)`.
    """
    json_path, images_dir = Path(json_path), Path(images_dir)
    data = _read_json(json_path)
    try:
        categories = sorted(data["categories"], key=lambda c: c["id"])
        category_index = {c["id"]: k for k, c in enumerate(categories)}
        classes = [str(c["name"]) for c in categories]
        image_ids = {entry["id"] for entry in data["images"]}
    except (KeyError, TypeError) as exc:
        raise DatasetError(f"{json_path}: every category needs 'id' and 'name', every image 'id'") from exc
    collector = _Collector(lenient)
    problems = collector.problems
    by_image = defaultdict(list)
    for i, ann in enumerate(data.get("annotations") or []):
        where = f"{json_path}: annotations[{i}] (id {ann.get('id') if isinstance(ann, dict) else '?'})"
        if isinstance(ann, dict) and ann.get("iscrowd"):
            continue
        if not isinstance(ann, dict) or not isinstance(ann.get("bbox"), list) or len(ann["bbox"]) != 4:
            problems(WRONG_FIELD_COUNT, where, "bbox must be [x, y, w, h]")
        elif ann.get("image_id") not in image_ids:
            problems(UNKNOWN_IMAGE, where, f"image_id {ann.get('image_id')}")
        elif ann.get("category_id") not in category_index:
            problems(BAD_CLASS, where, f"category_id {ann.get('category_id')} is not among the categories")
        elif not all(_is_number(v) for v in ann["bbox"]):
            problems(NON_NUMERIC, where, f"bbox {ann['bbox']}")
        else:
            by_image[ann["image_id"]].append((ann["bbox"], category_index[ann["category_id"]], where))
    for j, entry in enumerate(data["images"]):
        if not isinstance(entry.get("file_name"), str):
            raise DatasetError(f"{json_path}: images[{j}] (id {entry['id']}) has no 'file_name'")
        image = _load_image(images_dir / entry["file_name"], f"{json_path}: images[{j}] (id {entry['id']})", problems)
        if image is None:
            continue
        boxes, ids = [], []
        for (x, y, w, h), cls, where in by_image[entry["id"]]:
            box = _checked_box([x, y, x + w, y + h], image.shape[1], image.shape[0], where, problems)
            if box is not None:
                boxes.append(box)
                ids.append(cls)
        collector.add(image, boxes, ids, images_dir / entry["file_name"])
    return collector.build(classes, json_path.stem, json_path)


# ---------------------------------------------------------------- WIDER FACE

WIDER_FIELDS = "x1 y1 w h blur expression illumination invalid occlusion pose"


def _is_image_path(line: str) -> bool:
    return Path(line.strip()).suffix.lower() in IMAGE_SUFFIXES


def load_wider_face(txt: str | Path, images_dir: str | Path, lenient: bool = False) -> DetectionDataset:
    """WIDER FACE ground truth (`wider_face_train_bbx_gt.txt`): an image path line, a face-count line, then
    one line per face with the 10 fields `x1 y1 w h blur expression illumination invalid occlusion pose`
    (a count of 0 is followed by one line of zeros). Images are `images_dir/<path>`; the one class is
    "face". The official files hold a few zero-size boxes: load them with `lenient=True`.
    """
    txt, images_dir = Path(txt), Path(images_dir)
    lines = _read_lines(txt)
    collector = _Collector(lenient)
    problems = collector.problems
    cursor = 0
    while cursor < len(lines):
        if not lines[cursor].strip():
            cursor += 1
            continue
        path_line, relative = cursor + 1, lines[cursor].strip()
        if not _is_image_path(relative):
            raise DatasetError(f"{txt}:{path_line}: expected an image path, got {relative!r}")
        count_text = lines[cursor + 1].strip() if cursor + 1 < len(lines) else "end of file"
        if not count_text.isdigit():
            raise DatasetError(f"{txt}:{path_line + 1}: expected the number of faces in {relative}, got {count_text!r}")
        count = int(count_text)
        cursor += 2
        box_lines = lines[cursor : cursor + count]
        if len(box_lines) < count:
            raise DatasetError(f"{txt}:{path_line}: file ends inside the {count} face lines of {relative}")
        first_box_line = cursor + 1
        cursor += count
        if count == 0 and cursor < len(lines) and not _is_image_path(lines[cursor]):
            cursor += 1  # the placeholder line of zeros
        image = _load_image(images_dir / relative, f"{txt}:{path_line}", problems)
        if image is None:
            continue
        boxes = []
        for offset, line in enumerate(box_lines):
            where, fields = f"{txt}:{first_box_line + offset}", line.split()
            if len(fields) != 10:
                problems(WRONG_FIELD_COUNT, where, f"expected 10 ({WIDER_FIELDS}), got {len(fields)}")
                continue
            values = _numbers(fields, where, problems)
            if values is None:
                continue
            x, y, w, h = values[:4]
            box = _checked_box([x, y, x + w, y + h], image.shape[1], image.shape[0], where, problems)
            if box is not None:
                boxes.append(box)
        collector.add(image, boxes, [0] * len(boxes), images_dir / relative)
    return collector.build(["face"], txt.stem, txt)
