"""`train`, `distill` and `eval` for classifiers: load data and models, run a scheme, save model + summary."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from edgekd.config import SPLIT_SEED, DistillConfig, TrainConfig
from edgekd.data.classification import DatasetSplits, load_dataset, split_labeled, transfer_set
from edgekd.distill import build_method
from edgekd.distill.schemes import StudentRun, born_again, distill_offline, distill_online, noisy_student
from edgekd.errors import ConfigError
from edgekd.models import build_classifier, count_params, load_model, model_profile, save_model
from edgekd.train.metrics import evaluate


@dataclass
class ModelChoice:
    """An architecture to build (`arch`, `width`, `depth`) or a saved model file to load (`path`)."""

    arch: str | None = None
    width: float = 1.0
    depth: int = 1
    path: Path | None = None
    extra: dict = field(default_factory=dict)  # dropout / drop_path for noised students

    def build(self, splits: DatasetSplits):
        if self.path is not None:
            model, meta = load_model(self.path)
            check_compatible(model, meta, splits, self.path)
            return model
        return build_classifier(
            self.arch,
            len(splits.classes),
            splits.train.image_shape[-1],
            width=self.width,
            depth=self.depth,
            **self.extra,
        )


def check_compatible(model, meta: dict, splits: DatasetSplits, path) -> None:
    classes = model.spec["num_classes"]
    if classes != len(splits.classes):
        raise ConfigError(
            f"{path}: model predicts {classes} classes but dataset {splits.name} has {len(splits.classes)}"
        )
    if model.spec["in_channels"] != splits.train.image_shape[-1]:
        raise ConfigError(
            f"{path}: model takes {model.spec['in_channels']} channel(s), dataset {splits.name} has "
            f"{splits.train.image_shape[-1]}"
        )


def model_meta(model, splits: DatasetSplits, test: dict | None = None, **provenance) -> dict:
    shape = splits.train.image_shape
    return {
        "classes": splits.classes,
        "input_shape": [shape[2], shape[0], shape[1]],
        "layout": "NCHW",
        "mean": splits.mean,
        "std": splits.std,
        "dataset": splits.name,
        "profile": model_profile(model, (shape[2], shape[0], shape[1])),
        "test_top1": test["top1"] if test else None,
        "provenance": provenance,
    }


def write_outputs(out: Path, run: StudentRun, splits: DatasetSplits, summary: dict, **provenance) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    save_model(out / "model.pt", run.model, model_meta(run.model, splits, run.test, **provenance))
    summary.update(
        {
            "dataset": splits.describe(),
            "history": run.history,
            "test": run.test,
            **run.extra,
            "model_file": str(out / "model.pt"),
        }
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _set_threads(cfg: TrainConfig) -> None:
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)


def run_train(
    data: str,
    model: ModelChoice,
    cfg: TrainConfig,
    out: Path,
    resume: bool = False,
    labels: int | None = None,
    show_progress: bool = True,
) -> dict:
    """Train a classifier on hard labels (a teacher, or the no-KD baseline of a student)."""
    _set_threads(cfg)
    torch.manual_seed(cfg.seed)
    splits = load_dataset(data)
    train_set = split_labeled(splits.train, labels, SPLIT_SEED)[0] if labels else splits.train
    net = model.build(splits)
    started = time.perf_counter()
    run = distill_offline(
        net,
        build_method("none", DistillConfig()),
        splits,
        cfg,
        teacher=None,
        train_set=train_set,
        run_dir=out,
        resume=resume,
        label=f"train {model.arch}",
        show_progress=show_progress,
    )
    summary = {
        "command": "train",
        "model": {"spec": net.spec, **model_meta(net, splits)["profile"]},
        "config": cfg.to_dict(),
        "labels": labels or len(splits.train),
        "seconds": time.perf_counter() - started,
    }
    return write_outputs(out, run, splits, summary, method="none", scheme="supervised")


def run_distill(
    data: str,
    student: ModelChoice,
    teacher: ModelChoice | None,
    cfg: TrainConfig,
    dcfg: DistillConfig,
    out: Path,
    resume: bool = False,
    labels: int | None = None,
    cache_dir: Path | None = None,
    show_progress: bool = True,
) -> dict:
    """Distil `teacher` into `student` with `dcfg.method` under `dcfg.scheme`.

    With `labels`, only that many training images keep their label; the rest become the unlabeled
    transfer set that the teacher annotates (offline) or pseudo-labels (noisy_student).
    """
    _set_threads(cfg)
    torch.manual_seed(cfg.seed)
    splits = load_dataset(data)
    labeled, unlabeled = split_labeled(splits.train, labels, SPLIT_SEED) if labels else (splits.train, None)
    transfer = splits.train if labels is None else transfer_set(labeled, unlabeled)
    started = time.perf_counter()
    common = {"run_dir": out, "resume": resume, "show_progress": show_progress}
    teacher_net = teacher.build(splits) if teacher else None
    teacher_top1 = (
        evaluate(teacher_net, splits.test, splits.mean, splits.std)["top1"]
        if (teacher_net is not None and teacher.path)
        else None
    )
    scheme = dcfg.scheme

    if scheme == "offline":
        if teacher_net is None:
            raise ConfigError("offline distillation needs --teacher MODEL.pt (a trained teacher)")
        net = student.build(splits)
        method = build_method(dcfg.method, dcfg, net, teacher_net)
        run = distill_offline(
            net,
            method,
            splits,
            cfg,
            teacher_net,
            train_set=transfer,
            cache_dir=cache_dir,
            label=f"distill {dcfg.method}",
            **common,
        )
    elif scheme == "online":
        if teacher_net is None:
            raise ConfigError("online distillation needs a peer: --teacher MODEL.pt or --teacher-arch ARCH")
        net = student.build(splits)
        run = distill_online(net, build_method(dcfg.method, dcfg, net, teacher_net), splits, cfg, teacher_net, **common)
    elif scheme == "self":
        method = build_method(dcfg.method, dcfg)
        run = born_again(
            lambda: student.build(splits),
            method,
            splits,
            cfg,
            generations=dcfg.generations,
            train_set=transfer if labels is None else labeled,
            **common,
        )
    elif scheme == "noisy_student":
        if unlabeled is None:
            raise ConfigError(
                "noisy_student needs unlabeled images: pass --labels N to keep N labels and use "
                "the rest as unlabeled data"
            )
        if teacher_net is None:
            raise ConfigError("noisy_student needs --teacher MODEL.pt (trained on the labeled images)")
        noised = ModelChoice(
            student.arch,
            student.width,
            student.depth,
            extra={"dropout": dcfg.noisy_dropout, "drop_path": dcfg.noisy_drop_path},
        )
        if count_params(noised.build(splits)) < count_params(teacher_net):
            raise ConfigError(
                "noisy_student is knowledge expansion: the student must be at least as large as "
                "the teacher (choose a wider/deeper --student)"
            )
        run = noisy_student(
            teacher_net,
            lambda: noised.build(splits),
            labeled,
            unlabeled,
            splits,
            cfg,
            iterations=dcfg.noisy_iterations,
            soft=dcfg.pseudo_soft,
            threshold=dcfg.pseudo_threshold,
            **common,
        )
    else:
        raise ConfigError(f"unknown scheme '{scheme}'; choose offline, online, self or noisy_student")

    summary = {
        "command": "distill",
        "method": dcfg.method,
        "scheme": scheme,
        "student": {"spec": run.model.spec, **model_meta(run.model, splits)["profile"]},
        "teacher": {
            "file": str(teacher.path) if teacher and teacher.path else None,
            "spec": teacher_net.spec if teacher_net is not None else None,
            "test_top1": teacher_top1,
        },
        "config": cfg.to_dict(),
        "distill": dcfg.to_dict(),
        "labels": labels or len(splits.train),
        "seconds": time.perf_counter() - started,
    }
    return write_outputs(
        out,
        run,
        splits,
        summary,
        method=dcfg.method,
        scheme=scheme,
        teacher=str(teacher.path) if teacher and teacher.path else None,
    )


def run_eval(model_path: Path, data: str | None = None, seed: int = 0) -> dict:
    """Top-1, per-class precision/recall and the confusion matrix of a saved model on a test split."""
    model, meta = load_model(model_path)
    splits = load_dataset(data or meta.get("dataset"), seed)
    check_compatible(model, meta, splits, model_path)
    # Normalise as the model was trained, not with the evaluation set's statistics.
    mean, std = meta.get("mean", splits.mean), meta.get("std", splits.std)
    metrics = evaluate(model, splits.test, mean, std, full=True)
    shape = splits.train.image_shape
    return {
        "command": "eval",
        "model_file": str(model_path),
        "dataset": splits.describe(),
        "model": {"spec": model.spec, **model_profile(model, (shape[2], shape[0], shape[1]))},
        "test": metrics,
    }
