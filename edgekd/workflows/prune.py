"""`prune`: load a model file, prune it step by step with fine-tuning after each step, measure it before and
after, and write `model.pt` + `summary.json`.

Classifiers and detectors go through the same steps; `ClassifierTask` and `DetectorTask` hold what differs
(data, evaluation, the training loop, the model file's meta). Fine-tuning is the distillation training:
`--method none` trains on labels, any other method learns from `--teacher` as `edgekd distill` does.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from edgekd.compress import ChannelPruner, compressed_size, gradual_schedule, magnitude_prune, sparsity_report
from edgekd.compress.magnitude import SCOPES, make_permanent
from edgekd.config import DETECTION_TRAIN, DistillConfig, PruneConfig, TrainConfig
from edgekd.data.classification import load_dataset
from edgekd.distill import METHODS, build_method
from edgekd.distill.detection import DETECTION_METHODS, build_detection_method
from edgekd.distill.schemes import fit_student
from edgekd.distill.schemes.detection import fit_detector
from edgekd.errors import ConfigError
from edgekd.models.checkpoint import load_model, save_model
from edgekd.models.profile import model_profile
from edgekd.train.detection_eval import SCORE_THRESHOLD, evaluate_detector
from edgekd.train.metrics import evaluate
from edgekd.workflows.classification import ModelChoice, check_compatible, model_meta
from edgekd.workflows.detection import TeacherDetector, detector_meta, load_detection_splits

KINDS = ("magnitude", "structured")


def check_prune_config(cfg: PruneConfig) -> None:
    """Refuse a bad setting before any data is loaded."""
    if cfg.kind not in KINDS:
        raise ConfigError(f"pruning kind '{cfg.kind}': choose {' or '.join(KINDS)}")
    if cfg.kind == "magnitude" and not 0 < cfg.sparsity < 1:
        raise ConfigError(f"--sparsity must be between 0 and 1 (exclusive), got {cfg.sparsity}")
    if cfg.kind == "structured" and not 0 < cfg.macs_ratio < 1:
        raise ConfigError(f"--macs-ratio must be between 0 and 1 (exclusive), got {cfg.macs_ratio}")
    if cfg.scope not in SCOPES:
        raise ConfigError(f"--scope '{cfg.scope}': choose {' or '.join(SCOPES)}")
    if cfg.steps < 1 or cfg.epochs < 0:
        raise ConfigError(f"need --steps >= 1 and --epochs >= 0, got {cfg.steps} and {cfg.epochs}")


class ClassifierTask:
    train_defaults = TrainConfig()

    def __init__(self, model, meta: dict, data: str | None, model_path: Path):
        self.splits = load_dataset(data or meta.get("dataset"))
        check_compatible(model, meta, self.splits, model_path)
        # Evaluate as the model was trained, as `edgekd eval` does.
        self.mean, self.std = meta.get("mean", self.splits.mean), meta.get("std", self.splits.std)
        height, width, channels = self.splits.train.image_shape
        self.input_shape = (channels, height, width)

    def load_teacher(self, path: str):
        return ModelChoice(path=Path(path)).build(self.splits)

    def method(self, name: str, dcfg: DistillConfig, student, teacher):
        return build_method(name, dcfg, student, teacher)

    @staticmethod
    def needs_teacher(name: str) -> bool:
        if name not in METHODS:
            raise ConfigError(f"unknown distillation method '{name}'; choose one of {', '.join(METHODS)}")
        return METHODS[name].needs_teacher

    def evaluate(self, model) -> dict:
        return evaluate(model, self.splits.test, self.mean, self.std, full=True)

    @staticmethod
    def headline(test: dict) -> dict:
        return {"top1": test["top1"]}

    def finetune(self, model, method, teacher, cfg: TrainConfig, label: str, show_progress: bool) -> list[dict]:
        run = fit_student(model, method, self.splits, cfg, teacher=teacher, label=label, show_progress=show_progress)
        return run.history

    def meta(self, model, test: dict, **provenance) -> dict:
        return model_meta(model, self.splits, test, **provenance)


class DetectorTask:
    train_defaults = DETECTION_TRAIN

    def __init__(self, model, meta: dict, data: str | None, model_path: Path):
        self.splits = load_detection_splits(data or meta.get("dataset"))
        classes = len(self.splits.train.classes)
        if model.num_classes != classes or model.input_shape[0] != self.splits.channels:
            raise ConfigError(
                f"{model_path}: detector has {model.num_classes} classes and {model.input_shape[0]} channel(s); "
                f"dataset {self.splits.name} has {classes} and {self.splits.channels}"
            )
        self.threshold = meta.get("score_threshold", SCORE_THRESHOLD)
        self.input_shape = tuple(model.input_shape)

    def load_teacher(self, path: str):
        teacher = TeacherDetector(path)
        if teacher.model is None:
            raise ConfigError(f"teacher '{path}' only gives boxes; pruning fine-tunes with one of our detectors")
        return teacher.model

    def method(self, name: str, dcfg: DistillConfig, student, teacher):
        return build_detection_method(name, dcfg, student, teacher)

    @staticmethod
    def needs_teacher(name: str) -> bool:
        if name not in DETECTION_METHODS:
            raise ConfigError(
                f"unknown detection fine-tuning method '{name}'; choose one of {', '.join(DETECTION_METHODS)}"
            )
        return DETECTION_METHODS[name].needs_teacher

    def evaluate(self, model) -> dict:
        return evaluate_detector(model, self.splits.test, self.threshold)

    @staticmethod
    def headline(test: dict) -> dict:
        return {"map50": test["map50"], "map": test["map"]}

    def finetune(self, model, method, teacher, cfg: TrainConfig, label: str, show_progress: bool) -> list[dict]:
        splits = self.splits
        run = fit_detector(
            model, method, splits.train, splits.val, splits.test, cfg, teacher, label=label, show_progress=show_progress
        )
        self.threshold = run.extra["score_threshold"]  # recalibrated on validation for the pruned model
        return run.history

    def meta(self, model, test: dict, **provenance) -> dict:
        return detector_meta(model, self.splits, test, **provenance)


def measure(model, task, test: dict) -> dict:
    """The numbers a pruned model is compared on: accuracy, params, MACs, sparsity and bytes."""
    return {
        **task.headline(test),
        **model_profile(model, task.input_shape),
        "sparsity": sparsity_report(model)["sparsity"],
        **compressed_size(model),
    }


def prune_step(model, cfg: PruneConfig, pruner: ChannelPruner | None, amount: float) -> dict:
    """Prune to `amount` (sparsity, or the fraction of MACs removed); what the step reached."""
    if pruner is None:
        pruned = magnitude_prune(model, amount, cfg.scope, dense_ends=cfg.dense_ends)
        layers = sparsity_report(model)["layers"]
        zeros = sum(layers[name]["zeros"] for name in pruned)
        return {"sparsity": amount, "pruned_layers_sparsity": zeros / sum(layers[name]["params"] for name in pruned)}
    return {"macs_ratio": 1 - amount, **pruner.prune_to(1 - amount)}


def prune_gradually(model, task, cfg: PruneConfig, tcfg: TrainConfig, dcfg: DistillConfig, teacher, show_progress):
    """Prune along the cubic schedule with fine-tuning after each step; returns the steps and the pruning's
    settings and outcome for the model file's meta. The model ends in eval mode with its zeros made permanent."""
    pruner = (
        ChannelPruner(model, torch.zeros(1, *task.input_shape), cfg.channel_step, cfg.max_channel_ratio, cfg.round_to)
        if cfg.kind == "structured"
        else None
    )
    final = cfg.sparsity if pruner is None else 1 - cfg.macs_ratio
    steps = []
    for i, amount in enumerate(gradual_schedule(final, cfg.steps), start=1):
        step = {"step": i, **prune_step(model, cfg, pruner, amount)}
        if cfg.epochs > 0:
            # The method is built after each step: feature adapters are sized from the pruned widths.
            method = task.method(dcfg.method, dcfg, model, teacher)
            label = f"prune {cfg.kind} step {i}/{cfg.steps}"
            step["history"] = task.finetune(model, method, teacher, tcfg, label, show_progress)
        steps.append(step)
    make_permanent(model.eval())
    if pruner is None:
        return steps, {
            "sparsity": cfg.sparsity,
            "scope": cfg.scope,
            "sparsity_after": sparsity_report(model)["sparsity"],
        }
    return steps, {"macs_ratio": cfg.macs_ratio, "channel_ratio": pruner.summary()["channel_ratio"]}


def run_prune(
    model_path: Path,
    cfg: PruneConfig,
    out: Path,
    data: str | None = None,
    teacher: str | None = None,
    dcfg: DistillConfig | None = None,
    train_overrides: dict | None = None,
    show_progress: bool = True,
) -> dict:
    """Prune `model_path` with `cfg`, fine-tuning with `dcfg.method` (and `teacher`) after each step."""
    check_prune_config(cfg)
    dcfg = dcfg or DistillConfig(method="none")
    started = time.perf_counter()
    model, meta = load_model(model_path)
    if not (data or meta.get("dataset")):
        raise ConfigError(f"{model_path}: the model file names no dataset; pass --data")
    task = (DetectorTask if meta.get("task") == "detect" else ClassifierTask)(model, meta, data, model_path)
    base = task.train_defaults
    tcfg = base.with_overrides(epochs=cfg.epochs, lr=base.lr * cfg.lr_scale).with_overrides(**(train_overrides or {}))
    if tcfg.threads > 0:
        torch.set_num_threads(tcfg.threads)
    torch.manual_seed(tcfg.seed)
    teacher_net = task.load_teacher(teacher) if teacher else None
    if task.needs_teacher(dcfg.method) and teacher_net is None:
        raise ConfigError(f"fine-tuning with --method {dcfg.method} needs --teacher MODEL.pt")

    before = measure(model, task, task.evaluate(model))
    steps, pruned = prune_gradually(model, task, cfg, tcfg, dcfg, teacher_net, show_progress)
    test = task.evaluate(model)
    after = measure(model, task, test)
    pruning = {
        "kind": cfg.kind,
        "steps": cfg.steps,
        **pruned,
        "params_before": before["params"],
        "params_after": after["params"],
        "macs_before": before["macs"],
        "macs_after": after["macs"],
    }
    out.mkdir(parents=True, exist_ok=True)
    provenance = {"method": dcfg.method, "scheme": f"prune-{cfg.kind}", "teacher": teacher, "source": str(model_path)}
    save_model(out / "model.pt", model, task.meta(model, test, **provenance) | {"pruning": pruning})
    summary = {
        "command": "prune",
        "task": "detect" if isinstance(task, DetectorTask) else "classify",
        "source": str(model_path),
        "dataset": task.splits.name,
        "prune": cfg.to_dict(),
        "config": tcfg.to_dict(),
        "distill": dcfg.to_dict(),
        "teacher": teacher,
        "before": before,
        "after": after,
        "steps": steps,
        "test": test,
        "pruning": pruning,
        "seconds": time.perf_counter() - started,
        "model_file": str(out / "model.pt"),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
