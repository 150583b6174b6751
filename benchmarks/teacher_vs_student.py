"""The seeds' comparison: teacher, student without KD, KD student and int8 KD student, for the classifier
(Fashion-MNIST: resnet teacher, thesis student) and the face detector (built-in faces: m teacher, n student), measured
in one run with `edgekd bench`'s own code: size, params, MACs, p50 / p95 ms, FPS, accuracy / mAP, speed-up.

    python benchmarks/teacher_vs_student.py            # full run
    python benchmarks/teacher_vs_student.py --quick    # smoke run (digits, tiny epochs)

Teacher and KD student are reused from `benchmarks/compression.py`'s work folder when it holds them (same recipe);
otherwise they are trained here with that recipe. The no-KD student is always trained here with the KD student's
training settings, labels only. Every model is exported by `edgekd export` (verified); the fp32 and int8 .tflite
files are benched by `edgekd.bench` (accuracy through the engine on the test split). Latencies for the speed-ups
are then re-timed interleaved (one call of each model per round, rotating) so that other jobs on the machine slow
all models alike. Results: benchmarks/results/teacher_vs_student[_quick].{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import log, targets_table  # noqa: E402
from benchmarks.runtime_overhead import interleaved  # noqa: E402
from edgekd.bench.bench import BenchOptions, bench_model  # noqa: E402
from edgekd.bench.report import environment_info  # noqa: E402
from edgekd.runtime.engine import Engine  # noqa: E402

COMPRESSION_WORK = ROOT / "benchmarks" / ".work" / "compression"


@dataclass
class Plan:
    """Epochs follow benchmarks/compression.py, whose teacher and KD student are reused when present."""

    cls_data: str = "fashion-mnist"
    cls_teacher_epochs: int = 5
    cls_student_epochs: int = 3
    det_data: str = "faces"
    det_teacher_epochs: int = 40
    det_student_epochs: int = 30
    det_unlabeled: int = 1000  # extra images the teacher pseudo-labels for the KD student
    runs: int = 200  # bench runs per file
    rounds: int = 300  # interleaved rounds for the speed-ups
    threads: int = 1  # runtime threads (one core of a device)
    train_threads: int = 2
    reuse_compression: bool = True


QUICK = Plan(
    cls_data="digits",
    cls_teacher_epochs=2,
    cls_student_epochs=2,
    det_teacher_epochs=2,
    det_student_epochs=2,
    det_unlabeled=50,
    runs=30,
    rounds=40,
    reuse_compression=False,
)
ROWS = ("teacher", "student (no KD)", "KD student", "KD student int8")


# ------------------------------------------------------------------ models (each stage skipped when its file exists)


def _reusable(plan: Plan, name: str) -> Path | None:
    path = COMPRESSION_WORK / name / "model.pt"
    return path if plan.reuse_compression and path.is_file() else None


def _training_config(kd_student: Path, fallback):
    """The KD student's own training settings, so that the no-KD student differs only by the teacher."""
    from edgekd.config import TrainConfig

    summary = kd_student.parent / "summary.json"
    if summary.is_file():
        return TrainConfig().with_overrides(**json.loads(summary.read_text())["config"])
    return fallback


def classifier_models(plan: Plan, work: Path) -> tuple[dict[str, Path], dict]:
    from edgekd.config import DistillConfig, TrainConfig
    from edgekd.workflows.classification import ModelChoice, run_distill, run_train

    cfg = TrainConfig(epochs=plan.cls_teacher_epochs, threads=plan.train_threads, augment=False)
    teacher = _reusable(plan, "cls-teacher") or work / "cls-teacher" / "model.pt"
    if not teacher.is_file():
        run_train(plan.cls_data, ModelChoice("resnet"), cfg, teacher.parent, resume=True)
    kd = _reusable(plan, "cls-student-kd") or work / "cls-student-kd" / "model.pt"
    student_cfg = replace(cfg, epochs=plan.cls_student_epochs)
    if not kd.is_file():
        kd_args = (ModelChoice("thesis"), ModelChoice(path=teacher), student_cfg, DistillConfig(method="kd"))
        run_distill(plan.cls_data, *kd_args, kd.parent, resume=True)
    student_cfg = _training_config(kd, student_cfg)
    student = work / "cls-student" / "model.pt"
    if not student.is_file():
        run_train(plan.cls_data, ModelChoice("thesis"), student_cfg, student.parent, resume=True)
    paths = {"teacher": teacher, "student (no KD)": student, "KD student": kd}
    return paths, {"student_config": student_cfg.to_dict()}


def detector_models(plan: Plan, work: Path) -> tuple[dict[str, Path], dict]:
    from edgekd.config import DETECTION_TRAIN, DistillConfig
    from edgekd.workflows.detection import run_distill_detect, run_train_detect

    cfg = replace(DETECTION_TRAIN, epochs=plan.det_teacher_epochs, threads=plan.train_threads)
    teacher = _reusable(plan, "det-teacher") or work / "det-teacher" / "model.pt"
    if not teacher.is_file():
        run_train_detect(plan.det_data, "m", cfg, teacher.parent, resume=True)
    kd = _reusable(plan, "det-student-kd") or work / "det-student-kd" / "model.pt"
    student_cfg = replace(cfg, epochs=plan.det_student_epochs)
    if not kd.is_file():
        run_distill_detect(
            plan.det_data,
            "n",
            str(teacher),
            "pseudo",
            student_cfg,
            DistillConfig(),
            kd.parent,
            unlabeled=plan.det_unlabeled,
            soft=True,
            resume=True,
        )
    student_cfg = _training_config(kd, student_cfg)
    student = work / "det-student" / "model.pt"
    if not student.is_file():
        run_train_detect(plan.det_data, "n", student_cfg, student.parent, resume=True)
    paths = {"teacher": teacher, "student (no KD)": student, "KD student": kd}
    return paths, {"student_config": student_cfg.to_dict()}


def exported(model_path: Path, out: Path, formats: list[str]) -> Path:
    """Export (verified) unless an earlier run did; returns the export folder."""
    from edgekd.config import ExportConfig
    from edgekd.workflows.export import FORMATS, run_export

    if not all((out / f"{model_path.stem}{FORMATS[f][0]}.json").is_file() for f in formats):
        run_export(model_path, out, formats, cfg=ExportConfig())
    return out


# ------------------------------------------------------------------ measuring


def measure(plan: Plan, work: Path, task: str, paths: dict[str, Path], data: str) -> list[dict]:
    from edgekd.models.checkpoint import load_model
    from edgekd.models.profile import model_profile

    files = {}
    for row, path in paths.items():
        formats = ["tflite", "tflite-int8"] if row == "KD student" else ["tflite"]
        folder = exported(path, work / "export" / task / re.sub(r"[^a-z0-9]+", "-", row.lower()).strip("-"), formats)
        files[row] = folder / "model.tflite"
        if row == "KD student":
            files["KD student int8"] = folder / "model.int8.tflite"
    options = BenchOptions(runs=plan.runs, warmup=20, threads=plan.threads, data=data)
    rows = []
    for row in ROWS:
        source = paths["KD student" if row == "KD student int8" else row]
        model, meta = load_model(source)
        profile = model_profile(model, meta["input_shape"])
        log(f"  bench {row}: {files[row]}")
        report = bench_model(files[row], options)
        if report["status"] != "ok":
            raise RuntimeError(f"{files[row]}: {report['error']}")
        rows.append({"row": row, "source": str(source), "params": profile["params"], "macs": profile["macs"]})
        rows[-1]["report"] = report
    # Interleaved re-timing: the speed-ups compare models measured under the same background load.
    engines = {row: Engine(files[row], plan.threads) for row in ROWS}
    masters = {row: engine.preprocess(_image(engine))[0] for row, engine in engines.items()}
    inputs = {row: master.copy() for row, master in masters.items()}
    calls = {row: (lambda e=engine, x=inputs[row]: e.infer(x)) for row, engine in engines.items()}
    # Each input rewritten (untimed) before its call, as pre-processing leaves it: warm in cache for every model.
    refresh = {row: (lambda x=inputs[row], m=masters[row]: np.copyto(x, m)) for row in engines}
    times = interleaved(calls, plan.rounds, warmup=20, budget_seconds=120, refresh=refresh)
    for entry in rows:
        ms = np.asarray(times[entry["row"]]) * 1000
        entry["interleaved_p50_ms"] = float(np.median(ms))
        entry["interleaved_p95_ms"] = float(np.percentile(ms, 95))
    teacher = rows[0]
    for entry in rows:
        entry["speedup_p50"] = teacher["interleaved_p50_ms"] / entry["interleaved_p50_ms"]
        entry["smaller"] = teacher["report"]["model"]["size_bytes"] / entry["report"]["model"]["size_bytes"]
        entry["fewer_macs"] = teacher["macs"] / entry["macs"]
    return rows


def _image(engine: Engine) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (engine.height, engine.width, engine.channels), dtype=np.uint8)


# ------------------------------------------------------------------ report


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| model | file | size KB | params | MACs | p50 ms | p95 ms | FPS | interleaved p50 ms | speed-up "
        "| metric | mAP@0.5:0.95 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in rows:
        report = entry["report"]
        accuracy, latency = report["accuracy"], report["latency"]
        metric = f"{accuracy['primary']} {accuracy['metrics'][accuracy['primary']]:.4f}"
        coco = accuracy["metrics"].get("map")
        lines.append(
            f"| {entry['row']} | {report['model']['file']} | {report['model']['size_bytes'] / 1024:.1f} | "
            f"{entry['params']:,} | {entry['macs']:,} | {latency['p50_ms']:.3f} | {latency['p95_ms']:.3f} | "
            f"{latency['fps']:.0f} | {entry['interleaved_p50_ms']:.3f} | {entry['speedup_p50']:.2f}x | {metric} | "
            f"{f'{coco:.4f}' if coco is not None else '-'} |"
        )
    return lines


def targets(tables: dict) -> dict:
    kd = next(e for e in tables["detect"] if e["row"] == "KD student")
    int8 = next(e for e in tables["detect"] if e["row"] == "KD student int8")
    best = max(kd["speedup_p50"], int8["speedup_p50"])
    return {
        "face student >= 5x faster than the teacher at p50 (best of fp32 / int8 TFLite)": {
            "value": {"fp32": kd["speedup_p50"], "int8": int8["speedup_p50"]},
            "met": best >= 5,
        }
    }


def write_report(report: dict, folder: Path, tag: str) -> None:
    (folder / f"{tag}.json").write_text(json.dumps(report, indent=2, default=str))
    titles = {
        "classify": f"Classifier ({report['plan']['cls_data']}: resnet teacher, thesis student; top-1)",
        "detect": f"Face detector ({report['plan']['det_data']}: m teacher, n student; mAP@0.5)",
    }
    lines = [
        "# Teacher vs student: size, speed and accuracy",
        "",
        f"Measured by `benchmarks/teacher_vs_student.py{' --quick' if 'quick' in tag else ''}` in "
        f"{report['total_minutes']:.1f} min on {report['environment']['cpu']} "
        f"({report['environment']['cpu_count']} cores; other jobs shared the machine). Each model is exported and "
        f"verified by `edgekd export`, then benched by `edgekd.bench` as .tflite in ai-edge-litert on "
        f"{report['plan']['threads']} thread: p50 / p95 / FPS over {report['plan']['runs']} runs, accuracy through "
        "the engine on the test split. Speed-ups use the interleaved re-timing (one call of each model per round), "
        "which cancels the background load. Params / MACs of the torch model (int8 keeps the KD student's).",
    ]
    for task, rows in report["tables"].items():
        lines += ["", f"## {titles[task]}", ""]
        lines += [f"Models: {report['sources'][task]}", ""]
        lines += table(rows)
    lines += targets_table(report["targets"])
    lines += ["", f"![speed vs accuracy]({tag}.png)"]
    (folder / f"{tag}.md").write_text("\n".join(lines) + "\n")


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, (task, rows) in zip(axes, report["tables"].items(), strict=False):
        for i, entry in enumerate(rows):
            accuracy = entry["report"]["accuracy"]
            value = accuracy["metrics"][accuracy["primary"]]
            ax.scatter(entry["interleaved_p50_ms"], value, s=50, marker="s" if "int8" in entry["row"] else "o")
            label = f"{entry['row']} {entry['speedup_p50']:.1f}x"
            point = (entry["interleaved_p50_ms"], value)  # students sit close together: stagger their labels
            ax.annotate(label, point, xytext=(6, 12 * i - 18), textcoords="offset points", fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("p50 ms, one thread (log)")
        ax.set_ylabel("top-1" if task == "classify" else "mAP@0.5")
        ax.set_title(task)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-reuse", action="store_true", help="train every model here, even if compression.py did")
    parser.add_argument("--work", type=Path)
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    plan, tag = (QUICK, "teacher_vs_student_quick") if args.quick else (Plan(), "teacher_vs_student")
    if args.no_reuse:
        plan = replace(plan, reuse_compression=False)
    work = args.work or ROOT / "benchmarks" / ".work" / tag
    started = time.perf_counter()
    tables, sources, recipes = {}, {}, {}
    for task, build, data in (
        ("classify", classifier_models, plan.cls_data),
        ("detect", detector_models, plan.det_data),
    ):
        log(f"{task}: models (reused from compression.py's work folder when there, else trained here)")
        paths, recipes[task] = build(plan, work)
        sources[task] = ", ".join(
            f"{row}: `{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}`" for row, path in paths.items()
        )
        log(f"{task}: export and bench")
        tables[task] = measure(plan, work, task, paths, data)
        for entry in tables[task]:
            accuracy = entry["report"]["accuracy"]
            log(
                f"  {entry['row']}: p50 {entry['interleaved_p50_ms']:.3f} ms ({entry['speedup_p50']:.2f}x), "
                f"{accuracy['primary']} {accuracy['metrics'][accuracy['primary']]:.4f}"
            )
    report = {
        "benchmark": "teacher_vs_student",
        "plan": asdict(plan),
        "environment": environment_info(),
        "total_minutes": (time.perf_counter() - started) / 60,
        "sources": sources,
        "recipes": recipes,
        "tables": tables,
    }
    report["targets"] = targets(tables)
    args.results.mkdir(parents=True, exist_ok=True)
    write_report(report, args.results, tag)
    plot(report, args.results / f"{tag}.png")
    log(f"done in {report['total_minutes']:.1f} min -> {args.results / tag}.json/.md/.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
