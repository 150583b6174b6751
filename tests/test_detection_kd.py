"""Detector training and every detection-distillation mode end to end on tiny data; pseudo-label files."""

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from edgekd.config import DETECTION_TRAIN, DistillConfig
from edgekd.data.detection.builtin import face_composite
from edgekd.data.detection.formats import load_yolo
from edgekd.distill.detection import build_detection_method, pseudo_label
from edgekd.distill.schemes.detection import fit_detector
from edgekd.models.checkpoint import load_model, save_model
from edgekd.models.detectors import build_detector
from edgekd.train.detection_batches import DetectionBatches
from edgekd.train.detection_eval import detect

CFG = replace(DETECTION_TRAIN, epochs=2, batch_size=16)


@pytest.fixture(scope="module")
def faces():
    return face_composite("train", n_images=48), face_composite("val", n_images=16), face_composite("test", n_images=16)


@pytest.fixture(scope="module")
def teacher(faces):
    torch.manual_seed(0)
    model = build_detector("s", 1, 1, 96)
    return fit_detector(model, build_detection_method("none", DistillConfig()), *faces, CFG, show_progress=False).model


@pytest.mark.parametrize("mode", ["none", "response", "feature"])
def test_each_loss_mode_trains_and_keeps_teacher_frozen(mode, faces, teacher):
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = build_detector("n", 1, 1, 96)
    method = build_detection_method(mode, DistillConfig(), student, teacher)
    run = fit_detector(student, method, *faces, CFG, teacher=teacher, show_progress=False)
    assert {"precision", "recall", "map50", "map", "ms_per_image"} <= set(run.test)
    assert all(np.isfinite(h["loss"]) for h in run.history)
    if mode == "response":
        assert "kd_heatmap" in run.history[0] and "kd_box" in run.history[0]
    if mode == "feature":
        assert run.history[0]["imitation"] > 0
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())


def test_response_kd_is_zero_when_student_equals_teacher(faces, teacher):
    method = build_detection_method("response", DistillConfig(), teacher, teacher)
    x = torch.rand(2, 1, 96, 96)
    out = teacher.forward_features(x)
    batch = {"boxes": [np.zeros((0, 4))] * 2, "class_ids": [np.zeros(0, np.int64)] * 2, "weights": None}
    terms = method(out, out, batch)
    assert terms["kd_heatmap"].item() == pytest.approx(0.0, abs=1e-5) and terms["kd_box"].item() == 0.0


def test_pseudo_labels_hard_and_soft(faces, teacher):
    train = faces[0]
    hard = pseudo_label(lambda imgs: detect(teacher, list(imgs))[0], train, threshold=0.3)
    soft = pseudo_label(lambda imgs: detect(teacher, list(imgs))[0], train, threshold=0.05, soft=True)
    assert soft.num_boxes >= hard.num_boxes
    assert all((w == 1).all() for w in hard.info["weights"])
    assert all(((w >= 0.05) & (w <= 1)).all() for w in soft.info["weights"])
    # Per-box weights survive batching with augmentation (boxes dropped by a crop drop their weights too).
    batches = DetectionBatches(soft, 8, seed=0)
    batch = next(batches.epoch(0))
    assert [len(w) for w in batch["weights"]] == [len(b) for b in batch["boxes"]]


def cli(*args, check=True):
    result = subprocess.run(
        [sys.executable, "-m", "edgekd.cli", *map(str, args)], capture_output=True, text=True, timeout=600
    )
    assert not check or result.returncode == 0, result.stdout + result.stderr
    return result


def test_cli_detection_train_distill_eval_and_pseudo_label_files(tmp_path, faces, teacher):
    save_model(tmp_path / "teacher.pt", teacher, {"task": "detect", "dataset": "faces"})
    cli(
        "distill",
        "--task",
        "detect",
        "--data",
        "faces",
        "--teacher",
        tmp_path / "teacher.pt",
        "--student-arch",
        "mcu-face",
        "--mode",
        "pseudo",
        "--epochs",
        "1",
        "--out",
        tmp_path / "student",
        "--quiet",
    )
    summary = json.loads((tmp_path / "student" / "summary.json").read_text())
    assert summary["pseudo_labels"]["images"] == 1000 and 0 <= summary["test"]["map"] <= 1
    model, meta = load_model(tmp_path / "student" / "model.pt")
    assert meta["task"] == "detect" and model.input_shape == (1, 96, 96)
    result = cli("eval", tmp_path / "student" / "model.pt")
    assert "mAP50-95" in result.stdout

    # pseudo-label writes YOLO files that the YOLO loader reads back with the same boxes.
    import cv2

    images = tmp_path / "data" / "images"
    images.mkdir(parents=True)
    for i, image in enumerate(faces[2].images[:6]):
        cv2.imwrite(str(images / f"img{i}.png"), image)
    cli(
        "pseudo-label",
        images,
        "--teacher",
        tmp_path / "teacher.pt",
        "--threshold",
        "0.05",
        "--out",
        tmp_path / "data" / "labels",
    )
    loaded = load_yolo(tmp_path / "data")
    direct = detect(teacher, [im for im in loaded.images])[0]
    for (boxes, scores, _), got in zip(direct, loaded.boxes, strict=True):
        expected = boxes[scores >= 0.05]
        assert len(expected) == len(got)
        assert np.allclose(np.sort(expected, 0), np.sort(got, 0), atol=0.05)


def test_cli_detection_errors(tmp_path):
    result = cli(
        "distill",
        "--task",
        "detect",
        "--data",
        "faces",
        "--teacher",
        "haar",
        "--mode",
        "response",
        "--out",
        tmp_path,
        check=False,
    )
    assert result.returncode == 2 and "use --mode pseudo" in result.stderr
    result = cli("train", "--task", "detect", "--data", "faces", "--model", "xl", "--out", tmp_path, check=False)
    assert result.returncode == 2 and "choose a scale" in result.stderr


def test_best_f1_threshold_on_a_known_case():
    from edgekd.train.detection_metrics import coco_map

    gt = {
        "images": [{"id": 0, "width": 100, "height": 100}],
        "annotations": [
            {"id": 1, "image_id": 0, "category_id": 0, "bbox": [0, 0, 20, 20], "area": 400, "iscrowd": 0},
            {"id": 2, "image_id": 0, "category_id": 0, "bbox": [50, 50, 20, 20], "area": 400, "iscrowd": 0},
        ],
        "categories": [{"id": 0, "name": "face"}],
    }
    boxes = np.array([[0, 0, 20, 20], [30, 0, 45, 15], [50, 50, 70, 70]], np.float32)
    # Thresholds <= 0.3 keep both hits and the false positive (F1 0.8); above 0.5 only one hit (F1 0.67).
    scores = np.array([0.9, 0.5, 0.3], np.float32)
    result = coco_map(gt, [(boxes, scores, np.zeros(3, np.int64))], scan_thresholds=True)
    assert result["best_f1_threshold"] == pytest.approx(0.05)
    dropped = coco_map(gt, [(boxes[:2], scores[:2], np.zeros(2, np.int64))], scan_thresholds=True)
    assert dropped["best_f1_threshold"] == pytest.approx(0.55)  # the false positive at 0.5 is cut
