"""The pipeline's stages, each a plain call into the workflows `edgekd train/distill/prune/export/bench` use.

Every stage takes the recipe, its output folder and the records of the stages it reads from, and returns a
JSON-serialisable dict of its outputs (paths) and figures; `edgekd.pipeline.cache` decides whether it runs.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgekd.config import DETECTION_TRAIN, DistillConfig, ExportConfig, PruneConfig
from edgekd.errors import ExportError
from edgekd.pipeline.recipe import Recipe

# Models the report compares, in the seeds' order: (stage, row label).
MODEL_ROWS = (
    ("teacher", "teacher"),
    ("baseline", "student (no KD)"),
    ("student", "KD student"),
    ("prune", "KD student, pruned"),
)


def _train_config(recipe: Recipe, epochs: int):
    return DETECTION_TRAIN.with_overrides(epochs=epochs, threads=recipe.threads, seed=recipe.seed)


def train_teacher(recipe: Recipe, folder: Path, upstream: dict) -> dict:
    from edgekd.workflows.detection import run_train_detect

    if Path(recipe.teacher.model).suffix == ".pt":  # a teacher the user trained before
        return {"model": recipe.teacher.model, "summary": None}
    cfg = _train_config(recipe, recipe.teacher.epochs)
    run_train_detect(recipe.data, recipe.teacher.model, cfg, folder, resume=True)
    return {"model": str(folder / "model.pt"), "summary": str(folder / "summary.json")}


def train_baseline(recipe: Recipe, folder: Path, upstream: dict) -> dict:
    from edgekd.workflows.detection import run_train_detect

    cfg = _train_config(recipe, recipe.student.epochs)
    run_train_detect(recipe.data, recipe.student.model, cfg, folder, resume=True)
    return {"model": str(folder / "model.pt"), "summary": str(folder / "summary.json")}


def distill_student(recipe: Recipe, folder: Path, upstream: dict) -> dict:
    from edgekd.workflows.detection import run_distill_detect

    s = recipe.student
    run_distill_detect(
        recipe.data,
        s.model,
        upstream["teacher"]["model"],
        s.method,
        _train_config(recipe, s.epochs),
        DistillConfig(),
        folder,
        unlabeled=s.unlabeled if s.method == "pseudo" else 0,
        soft=s.soft,
        resume=True,
    )
    return {"model": str(folder / "model.pt"), "summary": str(folder / "summary.json")}


def prune_student(recipe: Recipe, folder: Path, upstream: dict) -> dict:
    from edgekd.workflows.prune import run_prune

    p, source = recipe.prune, upstream["student"]["model"]
    cfg = PruneConfig(
        kind=p.kind, macs_ratio=p.macs_ratio, sparsity=p.sparsity, steps=p.steps, epochs=p.epochs, round_to=p.round_to
    )
    summary = run_prune(
        Path(source),
        cfg,
        folder,
        teacher=source if p.kd else None,
        dcfg=DistillConfig(method="response") if p.kd else None,
        train_overrides={"threads": recipe.threads, "seed": recipe.seed},
    )
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return {"model": str(folder / "model.pt"), "summary": str(folder / "summary.json")}


def export_model(recipe: Recipe, folder: Path, model: str, formats: list[str], target: str) -> dict:
    from edgekd.workflows.export import run_export

    e = recipe.export
    cfg = ExportConfig(max_drop=e.max_drop, qat_epochs=e.qat_epochs)
    try:
        summary = run_export(Path(model), folder, formats, cfg=cfg, target=target)
    except ExportError as error:
        raise ExportError(
            f"{error}\n  (recipe: drop the format from export.formats or raise export.max_drop)"
        ) from error
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    files = {fmt: result["file"] for fmt, result in summary["formats"].items()}
    return {"files": files, "summary": str(folder / "summary.json")}


def bench_files(recipe: Recipe, folder: Path, files: list[str]) -> dict:
    from edgekd.bench.bench import BenchOptions, bench_models, write_reports

    b = recipe.bench
    options = BenchOptions(
        runs=b.runs, warmup=b.warmup, threads=b.threads, data=recipe.data, max_images=b.max_images
    ).check()
    reports = bench_models(files, options)
    paths = write_reports(reports, folder)
    failed = [r["error"] for r in reports if r["status"] != "ok"]
    return {"reports": [str(p) for p in paths], "failed": failed}


def compile_c(recipe: Recipe, folder: Path, int8_tflite: str) -> dict:
    """The final int8 model as C (const weights, static arena): what a microcontroller runs."""
    from edgekd.mcu.compiler import compile_model

    compiled = compile_model(int8_tflite, folder)
    d = compiled.description
    return {
        "c_file": str(compiled.c_file),
        "description": str(folder / "model.json"),
        "arena_bytes": d["arena_bytes"],
        "weight_bytes": d["weight_bytes"],
        "macs": d["macs"],
    }


def mcu_tools_missing() -> list[str]:
    import shutil

    return [tool for tool in ("qemu-system-arm", "arm-none-eabi-gcc") if shutil.which(tool) is None]


def bench_emulated_mcu(recipe: Recipe, folder: Path, int8_tflite: str) -> dict:
    """The compiled model on the emulated Cortex-M4 (QEMU, instruction counts), accuracy through the device."""
    from edgekd.mcu.bench_mcu import McuOptions, bench_mcu

    b = recipe.bench
    options = McuOptions(  # a tenth of the CPU runs: instruction counts under QEMU repeat to one SysTick tick
        runs=max(1, b.runs // 10), warmup=1, data=recipe.data, max_images=b.max_images, work_dir=folder
    )
    report = bench_mcu(int8_tflite, None, options)
    path = folder / "report.json"
    path.write_text(json.dumps(report, indent=2))
    return {"reports": [str(path)]}


def collect_fleet_reports(recipe: Recipe, folder: Path, exported: list[str]) -> dict:
    """Reports of these exported models that fleet devices stored (`edgekd collect`), copied into the run so the
    report's per-device figures are traced to files; `bench.devices` narrows them to the named devices."""
    from edgekd.fleet.store import open_store
    from edgekd.runtime.manifest import sha256_file

    wanted = {sha256_file(path) for path in exported}
    store = open_store(recipe.bench.fleet_db, must_exist=True)
    try:
        rows = [
            row
            for row in store.reports()
            if row["model_sha256"] in wanted and (not recipe.bench.devices or row["device_id"] in recipe.bench.devices)
        ]
    finally:
        store.close()
    path = folder / "fleet_reports.json"
    path.write_text(json.dumps([row["report"] for row in rows], indent=1))
    missing = sorted(set(recipe.bench.devices) - {row["device_id"] for row in rows})
    return {"reports_file": str(path), "reports": len(rows), "devices_without_reports": missing}
