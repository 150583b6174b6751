"""`edgekd pipeline`: teacher -> distilled student -> pruned -> int8 -> exported and verified -> benchmarked ->
report, each stage cached by the hash of its inputs (`edgekd.pipeline.cache`).

`run.json` in the run folder lists the recipe and every stage's record; the report is built from it and the JSON
files it points to, so every figure in the report was measured by this run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from edgekd.pipeline import stages
from edgekd.pipeline.cache import StageRecord, run_stage
from edgekd.pipeline.recipe import Recipe

console = Console(stderr=True)
RUN_FILE = "run.json"
BENCH_SETTINGS = ("runs", "warmup", "threads", "max_images")  # what changes the local benchmark's figures


@dataclass
class Step:
    name: str
    title: str
    reads: tuple[str, ...]  # stages whose outputs it needs
    settings: object  # what, besides its inputs, decides its output (part of the cache key)
    work: object  # (folder, upstream results) -> result


def plan(recipe: Recipe) -> list[Step]:
    """The stages this recipe asks for, in order."""
    s, p, e = recipe.student, recipe.prune, recipe.export
    common = {"data": recipe.data, "seed": recipe.seed}
    steps = [
        Step(
            "teacher",
            f"train teacher ({recipe.teacher.model})",
            (),
            common | vars(recipe.teacher),
            lambda f, u: stages.train_teacher(recipe, f, u),
        )
    ]
    if s.baseline:
        steps.append(
            Step(
                "baseline",
                f"train student {s.model} without KD",
                (),
                common | {"model": s.model, "epochs": s.epochs},
                lambda f, u: stages.train_baseline(recipe, f, u),
            )
        )
    steps.append(
        Step(
            "student",
            f"distil student {s.model} ({s.method})",
            ("teacher",),
            common | vars(s),
            lambda f, u: stages.distill_student(recipe, f, u),
        )
    )
    final = "student"
    if p.kind != "none":
        steps.append(
            Step("prune", f"{p.kind} pruning", ("student",), vars(p), lambda f, u: stages.prune_student(recipe, f, u))
        )
        final = "prune"
    for name in [n for n, _ in stages.MODEL_ROWS if n in {st.name for st in steps} and n != final]:
        steps.append(_export_step(recipe, name, e.compare_formats, "cpu"))
    steps.append(_export_step(recipe, final, e.formats, e.target, export_name="export-final"))
    exports = tuple(st.name for st in steps if st.name.startswith("export-"))
    steps.append(
        Step(
            "bench",
            "benchmark every exported file (this CPU)",
            exports,
            {"data": recipe.data} | {k: getattr(recipe.bench, k) for k in BENCH_SETTINGS},
            lambda f, u: stages.bench_files(recipe, f, [p for n in exports for p in u[n]["files"].values()]),
        )
    )
    if "tflite-int8" in e.formats:
        steps += _mcu_steps(recipe)
    if recipe.bench.fleet_db:
        steps.append(
            Step(
                "fleet",
                "reports of these models from the fleet store",
                exports,
                # The store changes while devices report: read it on every run, never from the cache.
                {"fleet_db": recipe.bench.fleet_db, "devices": recipe.bench.devices, "read_at": time.time()},
                lambda f, u: stages.collect_fleet_reports(
                    recipe, f, [p for n in exports for p in u[n]["files"].values()]
                ),
            )
        )
    return steps


def _final_int8(upstream: dict) -> str:
    return upstream["export-final"]["files"]["tflite-int8"]


def _mcu_steps(recipe: Recipe) -> list[Step]:
    """Compiled C always (it needs no tools); the emulated Cortex-M4 when asked or, on auto, when installed."""
    steps = [
        Step(
            "compile",
            "compile the int8 model to C",
            ("export-final",),
            {},
            lambda f, u: stages.compile_c(recipe, f, _final_int8(u)),
        )
    ]
    mcu = recipe.bench.mcu
    missing = stages.mcu_tools_missing()
    if mcu == "on" or (mcu == "auto" and not missing):
        settings = {"data": recipe.data, "runs": recipe.bench.runs, "max_images": recipe.bench.max_images}
        steps.append(
            Step(
                "bench-mcu",
                "benchmark the compiled model on the emulated Cortex-M4 (QEMU)",
                ("export-final", "compile"),
                settings,
                lambda f, u: stages.bench_emulated_mcu(recipe, f, _final_int8(u)),
            )
        )
    elif mcu == "auto":
        console.print(f"[yellow]no emulated Cortex-M4 benchmark:[/] {', '.join(missing)} not installed")
    return steps


def _export_step(recipe: Recipe, source: str, formats: list[str], target: str, export_name: str | None = None):
    settings = {"formats": formats, "target": target, "max_drop": recipe.export.max_drop}
    settings["qat_epochs"] = recipe.export.qat_epochs
    return Step(
        export_name or f"export-{source}",
        f"export {source}: {', '.join(formats)}",
        (source,),
        settings,
        lambda f, u: stages.export_model(recipe, f, u[source]["model"], formats, target),
    )


def run_pipeline(recipe: Recipe, run_dir: Path, quick: bool = False) -> dict:
    """Run (or resume) every stage; returns the run record also written to `run_dir/run.json`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    steps = plan(recipe)
    records: dict[str, StageRecord] = {}
    started = time.perf_counter()
    for number, step in enumerate(steps, start=1):
        console.rule(f"[bold]stage {number}/{len(steps)}: {step.title}")
        upstream = [records[name] for name in step.reads]
        record = run_stage(
            run_dir,
            step.name,
            json.loads(json.dumps(step.settings, default=str)),
            upstream,
            lambda folder, step=step: step.work(folder, {name: records[name].result for name in step.reads}),
        )
        records[step.name] = record
        how = "cached, skipped" if record.cached else "done"
        console.print(f"[green]{how}[/] in {record.seconds:.0f} s -> {record.folder}")
    run = {
        "recipe": recipe.to_dict(),
        "quick": quick,
        "stages": {
            name: {"key": r.key, "folder": str(r.folder), "result": r.result, "seconds": r.seconds, "cached": r.cached}
            for name, r in records.items()
        },
        "seconds": time.perf_counter() - started,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (run_dir / RUN_FILE).write_text(json.dumps(run, indent=2, default=str))
    return run
