"""Detection data: YOLO / COCO / WIDER FACE loading and validation, box-aware augmentation, built-in sets."""

import json
import warnings

import cv2
import numpy as np
import pytest

from edgekd.data.detection import (
    Augmenter,
    DetectionDataset,
    builtin,
    clip_boxes,
    face_composite,
    hflip,
    letterbox,
    letterbox_boxes,
    load_coco,
    load_detection,
    load_wider_face,
    load_yolo,
    mosaic,
    random_scale_crop,
    real_face_photos,
    shapes,
    unletterbox_boxes,
    write_yolo_labels,
)
from edgekd.errors import DatasetError


def _write_image(path, width, height, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), image)
    return image


def _yolo_folder(root, label_lines, width=80, height=60):
    """A flat YOLO folder: images/a.png with labels/a.txt holding `label_lines`, and classes.txt."""
    _write_image(root / "images" / "a.png", width, height)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "a.txt").write_text("\n".join(label_lines) + "\n")
    (root / "classes.txt").write_text("cat\ndog\n")
    return root / "labels" / "a.txt"


def _inside(boxes, image):
    h, w = image.shape[:2]
    return bool(
        np.all(boxes[:, :2] >= 0)
        and np.all(boxes[:, 2] <= w)
        and np.all(boxes[:, 3] <= h)
        and np.all(boxes[:, 2:] > boxes[:, :2])
    )


# ---------------------------------------------------------------- YOLO


def test_yolo_round_trip_through_data_yaml(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "ds"
    expected = {}
    for i, (w, h) in enumerate([(64, 48), (50, 70), (33, 33)]):
        _write_image(root / "images" / "train" / f"img{i}.png", w, h, seed=i)
        xy = rng.uniform(0, [w / 2, h / 2], (3, 2))
        boxes = np.hstack([xy, xy + rng.uniform(1, [w / 2, h / 2], (3, 2))]).astype(np.float32)
        ids = rng.integers(0, 3, 3)
        write_yolo_labels(root / "labels" / "train" / f"img{i}.txt", boxes, ids, (w, h))
        expected[f"img{i}.png"] = (boxes, ids)
    (tmp_path / "data.yaml").write_text(
        "path: ds\ntrain: images/train\nval: images/train\nnames: {0: person, 1: car, 2: bike}\n"
    )
    ds = load_yolo(tmp_path / "data.yaml", "train")
    assert ds.classes == ["person", "car", "bike"] and len(ds) == 3 and ds.skipped == {}
    for file, boxes, ids in zip(ds.files, ds.boxes, ds.class_ids, strict=True):
        want_boxes, want_ids = expected[file.rsplit("/", 1)[-1]]
        np.testing.assert_allclose(boxes, want_boxes, atol=1e-3)
        np.testing.assert_array_equal(ids, want_ids)


def test_yolo_folder_layouts_and_background_images(tmp_path):
    _yolo_folder(tmp_path / "flat", ["1 0.5 0.5 0.25 0.5"])
    _write_image(tmp_path / "flat" / "images" / "b.png", 20, 20)  # no label file: no objects
    ds = load_yolo(tmp_path / "flat")
    assert ds.classes == ["cat", "dog"] and [len(b) for b in ds.boxes] == [1, 0]
    np.testing.assert_allclose(ds.boxes[0], [[30, 15, 50, 45]], atol=1e-4)
    with pytest.raises(DatasetError, match="single split"):
        load_yolo(tmp_path / "flat", "val")

    nested = tmp_path / "nested"
    _write_image(nested / "val" / "images" / "c.jpg", 40, 40)
    (nested / "val" / "labels").mkdir(parents=True)
    (nested / "val" / "labels" / "c.txt").write_text("4 0.5 0.5 0.5 0.5\n")
    assert load_yolo(nested, "val").classes == ["0", "1", "2", "3", "4"]  # no names: ids found


def test_data_yaml_names_list_txt_lists_and_errors(tmp_path):
    _yolo_folder(tmp_path, ["0 0.5 0.5 0.5 0.5"])
    (tmp_path / "val.txt").write_text("images/a.png\n")
    (tmp_path / "data.yaml").write_text("train: images\nval: val.txt\nnames: [cat, dog]\n")
    ds = load_yolo(tmp_path / "data.yaml", "val")
    assert ds.classes == ["cat", "dog"] and len(ds.boxes[0]) == 1
    assert len(load_detection(tmp_path, "val")) == 1  # a folder holding data.yaml is read through it
    with pytest.raises(DatasetError, match="no 'test' split"):
        load_yolo(tmp_path / "data.yaml", "test")
    (tmp_path / "data.yaml").write_text("train: images\nnc: 3\nnames: [cat, dog]\n")
    with pytest.raises(DatasetError, match="nc is 3"):
        load_yolo(tmp_path / "data.yaml")
    (tmp_path / "data.yaml").write_text("train: images\nnames: {0: cat, 2: dog}\n")
    with pytest.raises(DatasetError, match="not 0..1"):
        load_yolo(tmp_path / "data.yaml")


@pytest.mark.parametrize(
    "bad_line, reason",
    [
        ("7 0.5 0.5 0.2 0.2", "class id out of range"),
        ("0.5 0.5 0.5 0.2 0.2", "class id out of range"),
        ("0 0.5 0.5 abc 0.2", "non-numeric field"),
        ("0 0.5 nan 0.2 0.2", "non-numeric field"),
        ("0 0.5 0.5 0.2", "wrong number of fields"),
        ("0 0.5 0.5 0.2 0.2 0.1", "wrong number of fields"),
        ("0 0.95 0.5 0.3 0.2", "box outside the image"),
        ("0 0.5 0.5 0 0.2", "box of non-positive size"),
        ("0 0.5 0.5 0.2 -0.1", "box of non-positive size"),
    ],
)
def test_yolo_malformed_label_names_file_and_line(tmp_path, bad_line, reason):
    label_file = _yolo_folder(tmp_path, ["0 0.5 0.5 0.2 0.2", bad_line])
    with pytest.raises(DatasetError, match=reason) as err:
        load_yolo(tmp_path)
    assert f"{label_file}:2" in str(err.value)


def test_yolo_missing_and_corrupt_images(tmp_path):
    _yolo_folder(tmp_path, ["0 0.5 0.5 0.2 0.2"])
    (tmp_path / "list.txt").write_text("images/a.png\nimages/gone.png\n")
    (tmp_path / "data.yaml").write_text("train: list.txt\nnames: [cat, dog]\n")
    with pytest.raises(DatasetError, match="missing image") as err:
        load_yolo(tmp_path / "data.yaml")
    assert f"{tmp_path / 'list.txt'}:2" in str(err.value)

    (tmp_path / "data.yaml").unlink()  # back to the plain folder, which lists images/ itself
    (tmp_path / "images" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(DatasetError, match="corrupt image") as err:
        load_yolo(tmp_path)
    assert "broken.png" in str(err.value)


def test_yolo_lenient_skips_and_counts(tmp_path):
    _yolo_folder(
        tmp_path, ["0 0.5 0.5 0.2 0.2", "9 0.5 0.5 0.2 0.2", "1 0.5 0.5 x 0.2", "1 0.25 0.25 0.2 0.2", "0 0.5 0.5 0.2"]
    )
    (tmp_path / "images" / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.warns(UserWarning, match="skipped 4") as caught:
        ds = load_yolo(tmp_path, lenient=True)
    assert "class id out of range" in str(caught[0].message)
    assert len(ds) == 1 and ds.class_ids[0].tolist() == [0, 1]
    assert ds.skipped == {
        "class id out of range": 1,
        "non-numeric field": 1,
        "wrong number of fields": 1,
        "corrupt image": 1,
    }


# ---------------------------------------------------------------- COCO


def _coco_file(tmp_path, annotations):
    _write_image(tmp_path / "images" / "one.png", 100, 80)
    _write_image(tmp_path / "images" / "two.png", 50, 50)
    data = {
        "images": [
            {"id": 10, "file_name": "one.png", "width": 100, "height": 80},
            {"id": 11, "file_name": "two.png", "width": 50, "height": 50},
        ],
        "categories": [{"id": 3, "name": "dog"}, {"id": 1, "name": "cat"}],
        "annotations": annotations,
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path


GOOD_COCO = [
    {"id": 1, "image_id": 10, "category_id": 3, "bbox": [10, 20, 30, 40], "iscrowd": 0},
    {"id": 2, "image_id": 10, "category_id": 1, "bbox": [0, 0, 5.5, 6], "iscrowd": 0},
    {"id": 3, "image_id": 11, "category_id": 1, "bbox": [0, 0, 50, 50], "iscrowd": 1},
]


def test_coco_parsing(tmp_path):
    ds = load_coco(_coco_file(tmp_path, GOOD_COCO), tmp_path / "images")
    assert ds.classes == ["cat", "dog"]  # ordered by category id
    np.testing.assert_allclose(ds.boxes[0], [[10, 20, 40, 60], [0, 0, 5.5, 6]])
    assert ds.class_ids[0].tolist() == [1, 0] and len(ds.boxes[1]) == 0  # the crowd region is left out
    assert len(load_detection(tmp_path / "instances.json")) == 2  # images/ beside the json is found


@pytest.mark.parametrize(
    "bad, reason",
    [
        ({"category_id": 7}, "class id out of range"),
        ({"bbox": [1, 2, 3]}, "wrong number of fields"),
        ({"bbox": [1, "2", 3, 4]}, "non-numeric field"),
        ({"bbox": [90, 10, 30, 10]}, "box outside the image"),
        ({"bbox": [10, 10, 0, 10]}, "box of non-positive size"),
        ({"image_id": 99}, "unknown image id"),
    ],
)
def test_coco_malformed_annotation_is_located(tmp_path, bad, reason):
    path = _coco_file(tmp_path, [GOOD_COCO[0], {**GOOD_COCO[1], **bad}])
    with pytest.raises(DatasetError, match=reason) as err:
        load_coco(path, tmp_path / "images")
    assert str(path) in str(err.value) and "annotations[1] (id 2)" in str(err.value)
    with pytest.warns(UserWarning, match="skipped 1"):
        assert len(load_coco(path, tmp_path / "images", lenient=True).boxes[0]) == 1


def test_coco_missing_image(tmp_path):
    path = _coco_file(tmp_path, GOOD_COCO)
    (tmp_path / "images" / "two.png").unlink()
    with pytest.raises(DatasetError, match=r"images\[1\] \(id 11\): missing image"):
        load_coco(path, tmp_path / "images")
    with pytest.warns(UserWarning):
        assert load_coco(path, tmp_path / "images", lenient=True).skipped == {"missing image": 1}


def test_to_coco_scores_perfect_detections_as_ap_1(tmp_path):
    import pycocotools  # noqa: F401  (a hard dependency of [train])
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ds = shapes("val", n_images=20)
    gt = COCO()
    gt.dataset = ds.to_coco()
    gt.createIndex()
    detections = [
        {"image_id": i, "category_id": int(c), "bbox": [x1, y1, x2 - x1, y2 - y1], "score": 1.0}
        for i, (boxes, ids) in enumerate(zip(ds.boxes, ds.class_ids, strict=True))
        for (x1, y1, x2, y2), c in zip(boxes.tolist(), ids, strict=True)
    ]
    evaluator = COCOeval(gt, gt.loadRes(detections), "bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    assert evaluator.stats[0] == pytest.approx(1.0)


# ---------------------------------------------------------------- WIDER FACE

WIDER_GOOD = [
    "0--Parade/a.jpg",
    "2",
    "10 10 20 30 0 0 0 0 0 0",
    "40 5 8 8 1 0 0 0 0 0",
    "0--Parade/b.jpg",
    "0",
    "0 0 0 0 0 0 0 0 0 0",
    "0--Parade/c.jpg",
    "1",
    "1 1 10 10 0 0 0 0 0 0",
]


def _wider_file(tmp_path, lines):
    for name in ("a", "b", "c"):
        _write_image(tmp_path / "images" / "0--Parade" / f"{name}.jpg", 64, 48)
    path = tmp_path / "wider_face_train_bbx_gt.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_wider_face_parsing(tmp_path):
    ds = load_wider_face(_wider_file(tmp_path, WIDER_GOOD), tmp_path / "images")
    assert ds.classes == ["face"] and [len(b) for b in ds.boxes] == [2, 0, 1]
    np.testing.assert_allclose(ds.boxes[0], [[10, 10, 30, 40], [40, 5, 48, 13]])
    assert len(load_detection(tmp_path / "wider_face_train_bbx_gt.txt")) == 3


@pytest.mark.parametrize(
    "line_no, bad, reason",
    [
        (3, "10 10 20 30 0 0 0", "wrong number of fields"),
        (4, "40 5 8 x 1 0 0 0 0 0", "non-numeric field"),
        (3, "60 10 20 30 0 0 0 0 0 0", "box outside the image"),
        (4, "40 5 0 8 1 0 0 0 0 0", "box of non-positive size"),
        (1, "0--Parade/missing.jpg", "missing image"),
    ],
)
def test_wider_face_malformed_names_file_and_line(tmp_path, line_no, bad, reason):
    lines = list(WIDER_GOOD)
    lines[line_no - 1] = bad
    path = _wider_file(tmp_path, lines)
    with pytest.raises(DatasetError, match=reason) as err:
        load_wider_face(path, tmp_path / "images")
    assert f"{path}:{line_no}" in str(err.value)
    with pytest.warns(UserWarning, match="skipped 1"):
        assert load_wider_face(path, tmp_path / "images", lenient=True).skipped == {reason: 1}


def test_wider_face_broken_structure_raises_even_when_lenient(tmp_path):
    lines = list(WIDER_GOOD)
    lines[1] = "two"
    with pytest.raises(DatasetError, match=":2: expected the number of faces"):
        load_wider_face(_wider_file(tmp_path, lines), tmp_path / "images", lenient=True)


# ---------------------------------------------------------------- dataset and augmentation


def test_dataset_checks_and_subset():
    image = np.zeros((10, 10, 1), np.uint8)
    with pytest.raises(DatasetError, match="class id"):
        DetectionDataset([image], [[[0, 0, 5, 5]]], [[2]], ["a", "b"])
    with pytest.raises(DatasetError, match="2 boxes but 1 class ids"):
        DetectionDataset([image], [[[0, 0, 5, 5], [1, 1, 2, 2]]], [[0]], ["a"])
    ds = DetectionDataset([image, image + 1, image + 2], [[], [[0, 0, 5, 5]], []], [[], [0], []], ["a"], "d")
    part = ds.subset(np.array([1, 2]))
    assert len(part) == 2 and part.images[0][0, 0, 0] == 1 and part.boxes[0].shape == (1, 4)
    assert part.boxes[1].shape == (0, 4) and part.class_ids[1].dtype == np.int64


def test_flip_twice_is_identity_and_flip_moves_boxes():
    image = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    boxes = np.float32([[0, 0, 10, 5], [20, 3, 50, 30]])
    flipped, flipped_boxes = hflip(image, boxes)
    np.testing.assert_array_equal(flipped_boxes, [[40, 0, 50, 5], [0, 3, 30, 30]])
    np.testing.assert_array_equal(flipped[:, 40:], image[:, :10][:, ::-1])
    back, back_boxes = hflip(flipped, flipped_boxes)
    np.testing.assert_array_equal(back, image)
    np.testing.assert_array_equal(back_boxes, boxes)


def test_clip_boxes_drops_boxes_mostly_cut_away():
    boxes = np.float32([[-7, 0, 3, 10], [-3, 0, 7, 10], [5, 5, 6.5, 9]])  # 30 % and 70 % inside; 1.5 px wide
    kept, ids = clip_boxes(boxes, np.int64([0, 1, 2]), 20, 20, min_visible=0.4)
    np.testing.assert_array_equal(kept, [[0, 0, 7, 10]])
    assert ids.tolist() == [1]


def test_scale_crop_moves_boxes_with_the_pixels():
    rng = np.random.default_rng(3)
    checked = 0
    for _ in range(20):
        image = np.zeros((64, 64, 1), np.uint8)
        image[20:40, 16:30] = 255
        out, boxes, ids = random_scale_crop(
            image, np.float32([[16, 20, 30, 40]]), np.int64([0]), rng, (0.6, 1.6), min_visible=0.0
        )
        ys, xs = np.nonzero(out[..., 0] > 127)
        if len(boxes) and xs.size:
            np.testing.assert_allclose(boxes[0], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], atol=1.0)
            checked += 1
    assert checked >= 10


def test_augmenter_keeps_boxes_inside_and_is_reproducible():
    ds = shapes("train", n_images=12)
    augment = Augmenter(scale_range=(0.5, 1.8), blur_prob=0.5)
    for seed in range(3):
        for image, boxes, ids in zip(ds.images, ds.boxes, ds.class_ids, strict=True):
            out, out_boxes, out_ids = augment(image, boxes, ids, np.random.default_rng(seed))
            again = augment(image, boxes, ids, np.random.default_rng(seed))
            assert out.shape == image.shape and out.dtype == np.uint8
            assert len(out_boxes) == len(out_ids) and _inside(out_boxes, out)
            np.testing.assert_array_equal(out, again[0])
            np.testing.assert_array_equal(out_boxes, again[1])


def test_letterbox_maps_boxes_both_ways_and_mosaic_keeps_boxes_inside():
    image = np.zeros((40, 100, 1), np.uint8)
    boxed, scale, pad = letterbox(image, 64)
    assert boxed.shape == (64, 64, 1) and pad == (0, 19) and scale == (0.64, 26 / 40)
    boxes = np.float32([[10, 5, 90, 35]])
    np.testing.assert_allclose(
        unletterbox_boxes(letterbox_boxes(boxes, scale, pad), scale, pad, (100, 40)), boxes, atol=1e-4
    )

    ds = face_composite("val", n_images=4)
    out, boxes, ids = mosaic(list(zip(ds.images, ds.boxes, ds.class_ids, strict=True)), 96, np.random.default_rng(0))
    assert out.shape == (96, 96, 1) and _inside(boxes, out) and len(boxes) == ds.num_boxes


# ---------------------------------------------------------------- built-in sets


def test_face_composite_is_deterministic_with_disjoint_identities():
    first = face_composite("train", n_images=40, seed=5)
    again = face_composite("train", n_images=40, seed=5)
    for a, b in zip(first.images, again.images, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(first.boxes, again.boxes, strict=True):
        np.testing.assert_array_equal(a, b)
    used = {split: set(face_composite(split, n_images=60).info["face_ids"]) for split in builtin.SPLITS}
    for split, ids in used.items():
        assert ids and ids <= set(builtin.FACE_IDS[split])
    assert not used["train"] & used["val"] and not used["train"] & used["test"]
    assert not used["val"] & used["test"]


@pytest.mark.parametrize("channels, size", [(1, 96), (3, 96), (3, 64)])
def test_face_composite_boxes_inside_and_scaled(channels, size):
    ds = face_composite("test", size=size, channels=channels, n_images=50)
    assert ds.classes == ["face"] and ds.num_boxes > 30
    sides = []
    for image, boxes in zip(ds.images, ds.boxes, strict=True):
        assert image.shape == (size, size, channels) and _inside(boxes, image)
        sides += (boxes[:, 2] - boxes[:, 0]).tolist()
    assert min(sides) >= 12 * size / 96 - 1 and max(sides) <= 48 * size / 96 + 1


def test_face_composite_never_touches_photos_with_real_faces(monkeypatch):
    import matplotlib.cbook
    import skimage.data

    assert not set(builtin.BACKGROUND_PHOTOS) & set(builtin.FACE_PHOTOS)

    def forbidden(*args, **kwargs):
        raise AssertionError("a photo with a real face was used to build a training set")

    for name in ("astronaut", "camera"):
        monkeypatch.setattr(skimage.data, name, forbidden)
    monkeypatch.setattr(matplotlib.cbook, "get_sample_data", forbidden)
    builtin._background_photos.cache_clear()
    try:
        face_composite("train", channels=3, n_images=30)
        face_composite("train", channels=1, n_images=30)
        shapes("train", n_images=30)
    finally:
        builtin._background_photos.cache_clear()


def test_real_face_photos_are_rgb():
    photos = dict(real_face_photos())
    assert set(photos) == set(builtin.FACE_PHOTOS)
    assert all(p.dtype == np.uint8 and p.ndim == 3 and p.shape[-1] == 3 for p in photos.values())


def test_shapes_has_every_class_with_tight_boxes():
    ds = load_detection("shapes", "val")
    assert ds.classes == ["circle", "square", "triangle", "star"]
    assert set(np.concatenate(ds.class_ids).tolist()) == {0, 1, 2, 3}
    assert all(_inside(b, im) for im, b in zip(ds.images, ds.boxes, strict=True))
    rng = np.random.default_rng(0)
    for kind in ds.classes:  # drawn alone on black, the box is exactly the painted pixels
        canvas = np.zeros((64, 64, 3), np.uint8)
        box = builtin._draw_shape(canvas, kind, 10, 12, 31, rng)
        ys, xs = np.nonzero(canvas.max(-1))
        assert box == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_load_detection_rejects_unknown_specs(tmp_path):
    with pytest.raises(DatasetError, match="not a built-in"):
        load_detection("no-such-set")
    (tmp_path / "labels.csv").write_text("x")
    with pytest.raises(DatasetError, match="not a data.yaml"):
        load_detection(tmp_path / "labels.csv")
    with pytest.raises(DatasetError, match="unknown split"):
        load_detection("faces", "holdout")


def test_generation_is_quiet_and_fast_enough():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_detection("faces-rgb", "val")
    assert len(ds) == builtin.DEFAULT_IMAGES["val"]
