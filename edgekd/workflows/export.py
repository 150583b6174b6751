"""`edgekd export`: write ONNX / TFLite (fp32 and int8) files, run each in its own runtime against the torch
model on held-out data, and write a manifest beside every file that passed. A file that fails keeps no
manifest (the runtime refuses it) and the command exits non-zero naming the worst output and its error."""

from __future__ import annotations

import copy
import json
import time
from dataclasses import replace
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import torch
from rich.progress import Progress

from edgekd.config import DistillConfig, ExportConfig
from edgekd.errors import ConfigError, ExportError
from edgekd.export.onnx_export import export_onnx, quantize_onnx_fastest
from edgekd.export.samples import ExportData, load_export_data
from edgekd.export.tflite_export import export_tflite, input_clipping
from edgekd.export.verify import ExportedModel, check, compare, torch_outputs
from edgekd.models.checkpoint import load_model
from edgekd.runtime.backends import open_backend
from edgekd.runtime.manifest import sha256_file, write_manifest

# What each target runs: the formats exported by default, and whether TFLite Micro must accept the int8 file.
TARGETS = {
    "cpu": ["onnx", "onnx-int8", "tflite", "tflite-int8"],
    "rpi": ["onnx", "tflite", "tflite-int8"],  # XNNPACK runs int8 TFLite well on ARM; ORT int8 rarely pays
    "mcu": ["tflite-int8"],
}
FORMATS = {  # name -> (file suffix, precision)
    "onnx": (".onnx", "fp32"),
    "onnx-int8": (".int8.onnx", "int8"),
    "tflite": (".tflite", "fp32"),
    "tflite-int8": (".int8.tflite", "int8"),
}


def primary_metric(task: str) -> str:
    return "map50" if task == "detect" else "top1"


def _preprocessing(meta: dict, task: str) -> dict:
    channels = meta["input_shape"][0]
    if task == "detect":
        mean, std, resize = [0.0] * channels, [1.0] * channels, "letterbox"
    else:
        mean, std, resize = list(meta["mean"]), list(meta["std"]), "stretch"
    return {"resize": resize, "color": "gray" if channels == 1 else "rgb", "scale": 1 / 255, "mean": mean, "std": std}


def _decoding(meta: dict, task: str) -> dict:
    if task == "detect":
        return {
            "kind": "centernet",
            "stride": meta["stride"],
            "score_threshold": meta.get("score_threshold", 0.3),
            "max_detections": 100,
        }
    return {"kind": "softmax"}


def _manifest(path: Path, fmt: str, task: str, meta: dict, metrics: dict, provenance: dict) -> dict:
    described = open_backend(path).describe()
    return {
        "format": FORMATS[fmt][0].rsplit(".", 1)[-1],
        "precision": FORMATS[fmt][1],
        "task": task,
        "input": {**described["input"], "preprocessing": _preprocessing(meta, task)},
        "outputs": described["outputs"],
        "decoding": _decoding(meta, task),
        "labels": list(meta["classes"]),
        "metrics": metrics,
        "provenance": provenance,
    }


def input_range(meta: dict, task: str) -> tuple[float, float]:
    """Every value pre-processing can feed the model: pixels 0..1, normalised per channel."""
    pre = _preprocessing(meta, task)
    lows = [(0 - m) / s for m, s in zip(pre["mean"], pre["std"], strict=True)]
    highs = [(1 - m) / s for m, s in zip(pre["mean"], pre["std"], strict=True)]
    return float(min(lows)), float(max(highs))


def _write_file(fmt: str, model, data: ExportData, path: Path, done: dict) -> dict:
    """Produce one format's file; returns what was learnt on the way (e.g. the chosen int8 scheme)."""
    if fmt == "onnx":
        export_onnx(model, data.calibration, path)
    elif fmt == "onnx-int8":
        fp32 = done.get("onnx") or export_onnx(model, data.calibration, path.with_name("fp32.tmp.onnx"))
        info = quantize_onnx_fastest(Path(fp32), path, data.calibration)
        if "onnx" not in done:
            Path(fp32).unlink(missing_ok=True)
        return {"quantization": info}
    elif fmt == "tflite":
        export_tflite(model, data.calibration, path)
    else:
        fp32 = path.with_name(path.name + ".fp32.tmp")
        expected = input_range(data.meta, data.task)
        export_tflite(model, data.calibration, fp32, path, expected)
        fp32.unlink(missing_ok=True)
        return {"input_range": input_clipping(path, expected)}
    return {}


def _verify(fmt: str, path: Path, model, data: ExportData, reference: dict, max_drop: float) -> tuple[dict, str | None]:
    if not path.is_file() or path.stat().st_size == 0:
        return {}, f"{path}: the exporter wrote no file"
    precision = FORMATS[fmt][1]
    exported = ExportedModel(path, model)
    comparison = compare(torch_outputs(model, data.verification), exported.backend.run(data.verification)[0])
    problem = check(comparison, precision)
    metrics = data.metrics(exported)
    key = primary_metric(data.task)
    drop = (reference[key] - metrics[key]) * 100
    result = {"comparison": comparison, "test": metrics, "drop_points": round(drop, 3)}
    if problem is None and precision == "int8" and drop > max_drop:
        change = f"{reference[key]:.4f} -> {metrics[key]:.4f}"
        problem = f"{key} drops {drop:.2f} points ({change}), over --max-drop {max_drop}"
        result["over_max_drop"] = True
    return result, problem and f"{path.name}: {problem}"


def _export_one(fmt: str, model, samples: ExportData, path: Path, reference: dict, cfg, done: dict, target: str):
    """Write and verify one format: (result, problem or None). For `target` mcu the int8 .tflite must also
    run in TFLite Micro (supported ops only, integer compute, loads and invokes in the tflite-micro
    interpreter)."""
    started = time.perf_counter()
    try:
        learnt = _write_file(fmt, model, samples, path, done)
        result, problem = _verify(fmt, path, model, samples, reference, cfg.max_drop)
    except ExportError as error:
        learnt, result, problem = {}, {}, str(error)
    result.update(learnt, seconds=round(time.perf_counter() - started, 2), file=str(path))
    if problem is None and fmt == "tflite-int8" and learnt["input_range"]["clipped_fraction"] > 0:
        clipped = learnt["input_range"]["clipped_fraction"]
        problem = f"{path.name}: the int8 input cannot hold {clipped:.1%} of the real input range"
    if problem is None and fmt == "tflite-int8" and target == "mcu":
        from edgekd.export.tflm import tflm_problems

        blockers = tflm_problems(path)
        result["tflm_problems"] = blockers
        if blockers:
            problem = f"{path.name}: TFLite Micro cannot run it: {'; '.join(blockers)}"
    return result, problem


def quantization_aware_finetune(model, meta: dict, model_path: Path, data: str | None, cfg: ExportConfig):
    """A copy of `model` fine-tuned through fake int8 rounding (see compress.qat) on its training data."""
    from edgekd.compress.graph import output_layers
    from edgekd.compress.qat import QuantizationAwareModel
    from edgekd.workflows.prune import ClassifierTask, DetectorTask

    detect = meta.get("task") == "detect"
    task = (DetectorTask if detect else ClassifierTask)(model, meta, data, model_path)
    qat_model = copy.deepcopy(model)
    prepared = QuantizationAwareModel(qat_model, output_layers(qat_model, torch.zeros(1, *task.input_shape)))
    train_cfg = replace(task.train_defaults, epochs=cfg.qat_epochs, lr=cfg.qat_lr, optimizer="adamw", weight_decay=0)
    method = task.method("none", DistillConfig(), qat_model, None)
    history = task.finetune(qat_model, method, None, train_cfg, "quantization-aware fine-tuning", True)
    return prepared.finish(), {"epochs": cfg.qat_epochs, "lr": cfg.qat_lr, "history": history}


def run_export(
    model_path: Path,
    out: Path,
    formats: list[str],
    data: str | None = None,
    cfg: ExportConfig | None = None,
    target: str = "cpu",
) -> dict:
    """Export, verify and describe `model_path` in each format; raises ExportError listing every failure.

    An int8 file whose only fault is losing more than `cfg.max_drop` points is made again from a
    quantization-aware fine-tuned copy of the model (when `cfg.qat_epochs` > 0) and verified again."""
    cfg = cfg or ExportConfig()
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ConfigError(f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    if target not in TARGETS:
        raise ConfigError(f"unknown target '{target}'; choose from {', '.join(TARGETS)}")
    if target == "mcu" and "tflite-int8" not in formats:
        raise ConfigError("--target mcu needs the tflite-int8 format: microcontrollers run full-integer TFLite")
    model, meta = load_model(model_path)
    task = meta.get("task", "classify")
    samples = load_export_data(meta, data, cfg.calibration_images, cfg.verification_images)
    reference = samples.metrics(model)
    out.mkdir(parents=True, exist_ok=True)
    provenance = {
        **meta.get("provenance", {}),
        "source_model": str(model_path),
        "source_sha256": sha256_file(model_path),
        "dataset": meta.get("dataset"),
        "pruning": meta.get("pruning"),
        "edgekd_version": version("edgekd"),
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    paths = {fmt: out / f"{model_path.stem}{FORMATS[fmt][0]}" for fmt in formats}
    results, done = {}, {}
    with Progress(transient=True) as progress:
        bar = progress.add_task("export", total=len(formats))
        for fmt in formats:
            progress.update(bar, description=f"export {fmt}")
            results[fmt] = _export_one(fmt, model, samples, paths[fmt], reference, cfg, done, target)
            if results[fmt][1] is None:
                done[fmt] = paths[fmt]
            progress.advance(bar)
    retry = [fmt for fmt, (result, _) in results.items() if result.get("over_max_drop")]
    if retry and cfg.qat_epochs > 0:
        qat_model, qat = quantization_aware_finetune(model, meta, model_path, data, cfg)
        for fmt in retry:
            # Nothing from `done`: the fp32 ONNX there is the original model's, and the int8 file must come
            # from the fine-tuned one (quantizing the old graph again repeated the old drop exactly).
            result, problem = _export_one(fmt, qat_model, samples, paths[fmt], reference, cfg, {}, target)
            result["qat"] = {**qat, "drop_points_before": results[fmt][0]["drop_points"]}
            results[fmt] = result, problem
    summary = {"model_file": str(model_path), "task": task, "reference": reference, "formats": {}}
    failures = []
    for fmt, (result, problem) in results.items():
        path = paths[fmt]
        if problem is None:
            metrics = {"dataset": meta.get("dataset"), "split": "test", "reference": reference, **result}
            metrics.pop("qat", None)
            recipe = {"qat": {k: v for k, v in result["qat"].items() if k != "history"}} if "qat" in result else {}
            manifest = _manifest(path, fmt, task, meta, metrics, {**provenance, **recipe})
            result.update(manifest=str(write_manifest(path, manifest)), size_bytes=path.stat().st_size)
        else:
            failures.append(problem)
            result["error"] = problem
        summary["formats"][fmt] = result
    (out / "export.json").write_text(json.dumps(summary, indent=2, default=str))
    if failures:
        raise ExportError("export failed verification:\n  " + "\n  ".join(failures))
    return summary
