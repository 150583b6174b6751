"""`train`, `distill`, `eval` and `pseudo-label` for detectors."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from edgekd.config import DistillConfig, TrainConfig
from edgekd.data.classification import IMAGE_SUFFIXES, read_image
from edgekd.data.detection.builtin import (  # noqa: F401 (DetectionSplits is re-exported)
    BUILTIN_DETECTION,
    DetectionSplits,
    load_detection_splits,
)
from edgekd.data.detection.dataset import DetectionDataset
from edgekd.data.detection.formats import write_yolo_labels
from edgekd.distill.detection import build_detection_method, pseudo_label
from edgekd.distill.detection.pseudo_label import concat
from edgekd.distill.schemes.detection import DetectorRun, fit_detector
from edgekd.errors import ConfigError, DatasetError
from edgekd.models.checkpoint import load_model, save_model
from edgekd.models.detectors import PRESETS, SCALES, build_detector, build_preset
from edgekd.models.profile import model_profile
from edgekd.train.detection_eval import SCORE_THRESHOLD, detect, evaluate_detector, latency_ms

# Pre-trained face detectors miss faces much smaller than their smallest anchors: upscale small images first.
TEACHER_MIN_SIDE = 384


def build_student_detector(name: str, splits: DetectionSplits, input_size: int | None):
    classes, channels = len(splits.train.classes), splits.channels
    if name in PRESETS:
        overrides = {"num_classes": classes, "in_channels": channels}
        return build_preset(name, **overrides, **({"input_size": input_size} if input_size else {}))
    if name in SCALES:
        size = input_size or splits.train.images[0].shape[0]
        return build_detector(name, classes, channels, max(32, int(round(size / 32)) * 32))
    raise ConfigError(f"detector '{name}': choose a scale ({', '.join(SCALES)}) or a preset ({', '.join(PRESETS)})")


def detector_meta(model, splits: DetectionSplits, test: dict | None, **provenance) -> dict:
    return {
        "task": "detect",
        "classes": splits.train.classes,
        "input_shape": list(model.input_shape),
        "layout": "NCHW",
        "input_scale": "pixels / 255",
        "stride": model.stride,
        "dataset": splits.name,
        "decoding": "centernet-ltrb",
        # Operating threshold chosen on validation F1 (see train.detection_eval.calibrate_threshold).
        "score_threshold": test["score_threshold"] if test else SCORE_THRESHOLD,
        "profile": model_profile(model, model.input_shape),
        "test": test,
        "provenance": provenance,
    }


class TeacherDetector:
    """A detection teacher: one of our detectors (model.pt) or a pre-trained face detector by name."""

    def __init__(self, spec: str):
        self.spec = spec
        from edgekd.runtime.face_teachers import FACE_TEACHERS, load_face_teacher

        if spec in FACE_TEACHERS:
            self.model, self.face = None, load_face_teacher(spec)
        else:
            self.model, self.face = load_model(spec)[0], None
            if getattr(self.model, "spec", {}).get("arch") != "detector":
                raise ConfigError(f"{spec}: not a detector model file")

    def detect(self, images: Sequence[np.ndarray]):
        if self.model is not None:
            return detect(self.model, list(images))[0]
        results = []
        for image in images:
            rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
            factor = max(1.0, TEACHER_MIN_SIDE / min(rgb.shape[:2]))
            if factor > 1:
                rgb = cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
            boxes, scores, ids = self.face.detect(rgb)
            results.append((boxes / factor, scores, ids))
        return results

    def class_map(self, classes: list[str]) -> dict[int, int] | None:
        if self.face is None:
            return None
        if "face" not in classes:
            raise ConfigError(f"teacher '{self.spec}' detects faces, but the dataset classes are {classes}")
        return {0: classes.index("face")}


def _summary(run: DetectorRun, splits, cfg, started, **fields) -> dict:
    return {
        **fields,
        "dataset": splits.name,
        "classes": splits.train.classes,
        "config": cfg.to_dict(),
        "history": run.history,
        "test": run.test,
        "latency_ms_batch1": latency_ms(run.model),
        "model": {"spec": run.model.spec, **model_profile(run.model, run.model.input_shape)},
        "seconds": time.perf_counter() - started,
    }


def _write(out: Path, run: DetectorRun, splits, summary: dict, **provenance) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    save_model(out / "model.pt", run.model, detector_meta(run.model, splits, run.test, **provenance))
    summary["model_file"] = str(out / "model.pt")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def run_train_detect(
    data: str,
    model: str,
    cfg: TrainConfig,
    out: Path,
    input_size: int | None = None,
    resume: bool = False,
    show_progress: bool = True,
) -> dict:
    torch.manual_seed(cfg.seed)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    splits, started = load_detection_splits(data), time.perf_counter()
    net = build_student_detector(model, splits, input_size)
    run = fit_detector(
        net,
        build_detection_method("none", DistillConfig()),
        splits.train,
        splits.val,
        splits.test,
        cfg,
        run_dir=out,
        resume=resume,
        label=f"train detector {model}",
        show_progress=show_progress,
    )
    return _write(out, run, splits, _summary(run, splits, cfg, started, command="train", task="detect"), method="none")


def unlabeled_pool(data: str, count: int) -> DetectionDataset:
    """Extra images without labels: for a built-in, new images drawn from the training identities."""
    if str(data) not in BUILTIN_DETECTION:
        raise ConfigError(
            "--unlabeled N generates extra images for built-in sets; for your own data pass --unlabeled-dir FOLDER"
        )
    return BUILTIN_DETECTION[str(data)]("train", n_images=count, seed=7919)


def read_image_folder(folder: Path, channels: int | None = None) -> DetectionDataset:
    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DatasetError(f"{folder}: no images found")
    images = [read_image(p, channels) for p in paths]
    return DetectionDataset(
        images,
        [np.zeros((0, 4))] * len(images),
        [np.zeros(0)] * len(images),
        ["object"],
        Path(folder).name,
        [str(p) for p in paths],
    )


def run_distill_detect(
    data: str,
    student: str,
    teacher: str,
    mode: str,
    cfg: TrainConfig,
    dcfg: DistillConfig,
    out: Path,
    input_size: int | None = None,
    unlabeled: int = 0,
    unlabeled_dir: Path | None = None,
    soft: bool = False,
    resume: bool = False,
    show_progress: bool = True,
) -> dict:
    """mode: `pseudo` (teacher labels the unlabeled pool, student trains on labels + pseudo-labels),
    `response` (dense soft-target KD) or `feature` (neck imitation); the last two need one of our detectors."""
    torch.manual_seed(cfg.seed)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    splits, started = load_detection_splits(data), time.perf_counter()
    teacher_net = TeacherDetector(teacher)
    net = build_student_detector(student, splits, input_size)
    extra = {}
    if mode == "pseudo":
        pool = (
            read_image_folder(unlabeled_dir, splits.channels)
            if unlabeled_dir
            else (unlabeled_pool(data, unlabeled) if unlabeled else None)
        )
        source = pool if pool is not None else splits.train
        threshold = dcfg.det_soft_floor if soft else dcfg.det_pseudo_threshold
        class_map = teacher_net.class_map(splits.train.classes)
        labelled = pseudo_label(teacher_net.detect, source, threshold, soft, class_map)
        labelled.classes = splits.train.classes
        train_set = concat(splits.train, labelled, "train+pseudo") if pool is not None else labelled
        extra["pseudo_labels"] = labelled.info["pseudo_labels"] | {"images": len(source)}
        method = build_detection_method("none", dcfg)
    elif mode in ("response", "feature"):
        if teacher_net.model is None:
            raise ConfigError(
                f"--mode {mode} needs one of our detectors as teacher (model.pt); "
                f"'{teacher}' only gives boxes: use --mode pseudo"
            )
        method = build_detection_method(mode, dcfg, net, teacher_net.model)
        train_set = splits.train
    else:
        raise ConfigError(f"unknown detection distillation mode '{mode}'; choose pseudo, response or feature")
    run = fit_detector(
        net,
        method,
        train_set,
        splits.val,
        splits.test,
        cfg,
        teacher=teacher_net.model if method.needs_teacher else None,
        run_dir=out,
        resume=resume,
        label=f"distill detector ({mode})",
        show_progress=show_progress,
    )
    summary = _summary(
        run,
        splits,
        cfg,
        started,
        command="distill",
        task="detect",
        mode=mode,
        soft=soft,
        teacher=teacher,
        distill=dcfg.to_dict(),
        **extra,
    )
    return _write(out, run, splits, summary, method=mode, teacher=teacher)


def run_eval_detect(model_path: Path, data: str | None, meta: dict, model) -> dict:
    splits = load_detection_splits(data or meta.get("dataset"))
    metrics = evaluate_detector(model, splits.test, meta.get("score_threshold", SCORE_THRESHOLD))
    return {
        "command": "eval",
        "task": "detect",
        "model_file": str(model_path),
        "dataset": splits.name,
        "model": {"spec": model.spec, **model_profile(model, model.input_shape)},
        "test": metrics,
        "latency_ms_batch1": latency_ms(model),
    }


def run_pseudo_label(teacher: str, images: Path, out: Path, threshold: float) -> dict:
    """Write YOLO label files (`out/<image stem>.txt`) from a teacher's detections on a folder of images."""
    dataset = read_image_folder(images)
    teacher_net = TeacherDetector(teacher)
    labelled = pseudo_label(teacher_net.detect, dataset, threshold)
    out.mkdir(parents=True, exist_ok=True)
    for file, image, boxes, ids in zip(
        labelled.files, labelled.images, labelled.boxes, labelled.class_ids, strict=True
    ):
        write_yolo_labels(out / f"{Path(file).stem}.txt", boxes, ids, (image.shape[1], image.shape[0]))
    return {"images": len(dataset), "boxes": labelled.num_boxes, "labels_dir": str(out), "teacher": teacher}
