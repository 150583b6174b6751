"""The `edgekd` command. Thin: parses arguments, calls a workflow, prints a table, exits non-zero on errors."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgekd import __version__
from edgekd.config import DETECTION_TRAIN, DistillConfig, ExportConfig, TrainConfig, TuneConfig
from edgekd.errors import EdgeKDError
from edgekd.fleet.commands import FLEET_COMMANDS
from edgekd.mcu.commands import MCU_COMMANDS

console = Console(width=None if sys.stdout.isatty() else 160)  # logs and pipes get whole tables
err_console = Console(stderr=True, soft_wrap=True)


def _train_options(p: argparse.ArgumentParser) -> None:
    defaults = TrainConfig()
    g = p.add_argument_group("training")
    g.add_argument("--task", choices=["classify", "detect"], default="classify", help="default classify")
    g.add_argument(
        "--data",
        required=True,
        help="classify: built-in (fashion-mnist, digits, mnist-5k) or a folder of IDX files or class sub-folders; "
        "detect: built-in (faces, faces-rgb, shapes), an Ultralytics data.yaml or YOLO folder, a COCO .json or a "
        "WIDER FACE .txt",
    )
    g.add_argument("--input-size", type=int, help="detect: square input size in pixels (multiple of 32)")
    g.add_argument("--epochs", type=int, help=f"epochs (default {defaults.epochs})")
    g.add_argument("--batch-size", type=int, help=f"mini-batch size (default {defaults.batch_size})")
    g.add_argument("--lr", type=float, help=f"peak learning rate (default {defaults.lr})")
    g.add_argument("--optimizer", choices=["sgd", "adamw"], help=f"default {defaults.optimizer}")
    g.add_argument("--weight-decay", type=float, help=f"default {defaults.weight_decay}")
    g.add_argument("--augment", action="store_true", default=None, help="random crop + horizontal flip")
    g.add_argument("--seed", type=int, help=f"random seed for splits, init and batches (default {defaults.seed})")
    g.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    g.add_argument(
        "--labels",
        type=int,
        help="keep only N training labels (class-balanced); the other images "
        "become unlabeled data for the teacher to annotate",
    )
    g.add_argument("--out", type=Path, required=True, help="output folder: model.pt, summary.json, checkpoint.pt")
    g.add_argument("--resume", action="store_true", help="continue from the last epoch checkpoint in --out")
    g.add_argument("--quiet", action="store_true", help="no progress bars (one line per epoch)")


def _train_config(args, detect: bool = False) -> TrainConfig:
    base = DETECTION_TRAIN if detect else TrainConfig()
    return base.with_overrides(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        augment=args.augment,
        seed=args.seed,
        threads=args.threads,
    )


def _model_options(p, prefix: str, default_arch: str | None, what: str) -> None:
    try:
        from edgekd.models import CLASSIFIERS
        from edgekd.models.detectors import PRESETS, SCALES

        names = f"classifiers {', '.join(CLASSIFIERS)}; detectors (--task detect): scales {', '.join(SCALES)} or "
        names += f"presets {', '.join(PRESETS)}"
    except ImportError:  # a core install (no torch) still parses; the command itself then asks for [train]
        names = "see a training install (pip install 'edgekd[train]')"
    p.add_argument(
        f"--{prefix}arch" if prefix else "--model",
        dest=f"{prefix.replace('-', '_')}arch",
        default=default_arch,
        help=f"{what} architecture: {names}",
    )
    p.add_argument(
        f"--{prefix}width",
        dest=f"{prefix.replace('-', '_')}width",
        type=float,
        default=1.0,
        help=f"{what} width multiplier",
    )
    p.add_argument(
        f"--{prefix}depth",
        dest=f"{prefix.replace('-', '_')}depth",
        type=int,
        default=1,
        help=f"{what} depth multiplier (blocks per stage)",
    )


def _distill_options(p) -> None:
    d = DistillConfig()
    try:
        from edgekd.distill import METHODS
        from edgekd.distill.schemes import SCHEMES
    except ImportError:  # a core install (no torch): the command itself then asks for [train]
        METHODS, SCHEMES = {}, {}

    g = p.add_argument_group("distillation")
    methods = "; ".join(f"{n} ({m.kind}: {m.paper})" for n, m in METHODS.items())
    g.add_argument("--method", choices=list(METHODS) or None, default=d.method, help=f"method: {methods}")
    g.add_argument(
        "--scheme",
        choices=list(SCHEMES) or None,
        default=d.scheme,
        help="offline (frozen teacher), online (deep mutual learning), self (born-again "
        "generations), noisy_student (knowledge expansion with pseudo-labels)",
    )
    g.add_argument("--alpha", type=float, help=f"weight of hard-label CE in kd (default {d.alpha})")
    g.add_argument("--temperature", "-T", type=float, help=f"softmax temperature (default {d.temperature})")
    g.add_argument("--beta", type=float, help=f"weight of the fitnets hint loss (default {d.beta})")
    g.add_argument(
        "--hint",
        action="append",
        metavar="STUDENT_LAYER:TEACHER_LAYER",
        help="fitnets layer pair (repeatable); default: middle stages",
    )
    g.add_argument("--dkd-beta", type=float, help=f"DKD non-target weight (default {d.dkd_beta})")
    g.add_argument("--generations", type=int, help=f"self: generations after the first (default {d.generations})")
    g.add_argument("--iterations", type=int, help=f"noisy_student rounds (default {d.noisy_iterations})")
    g.add_argument("--hard-pseudo", action="store_true", help="noisy_student: argmax pseudo-labels, not soft")
    g.add_argument("--pseudo-threshold", type=float, help="noisy_student: keep pseudo-labels with confidence >= this")
    g.add_argument("--cache-dir", type=Path, help="store teacher outputs here and reuse them across runs")


def _distill_config(args) -> DistillConfig:
    return DistillConfig().with_overrides(
        method=args.method,
        scheme=args.scheme,
        alpha=args.alpha,
        temperature=args.temperature,
        beta=args.beta,
        hint_pairs=args.hint,
        dkd_beta=args.dkd_beta,
        generations=args.generations,
        noisy_iterations=args.iterations,
        pseudo_threshold=args.pseudo_threshold,
        pseudo_soft=False if args.hard_pseudo else None,
    )


def _print_summary(summary: dict, title: str) -> None:
    table = Table(title=title)
    for col in ("model", "params", "MACs", "test top-1", "seconds"):
        table.add_column(col, justify="right" if col != "model" else "left")
    model = summary.get("student") or summary.get("model")
    spec = model["spec"]
    name = f"{spec['arch']} w{spec.get('width', 1)} d{spec.get('depth', 1)}"
    table.add_row(
        name,
        f"{model['params']:,}",
        f"{model['macs']:,}",
        f"{summary['test']['top1'] * 100:.2f} %",
        f"{summary.get('seconds', 0):.0f}",
    )
    teacher = summary.get("teacher") or {}
    if teacher.get("test_top1") is not None:
        table.add_row(f"teacher {teacher['spec']['arch']}", "", "", f"{teacher['test_top1'] * 100:.2f} %", "")
    console.print(table)
    for key in ("generations", "rounds", "student_beats_teacher"):
        if key in summary:
            console.print(f"{key}: {summary[key]}")


def cmd_train(args) -> int:
    if args.task == "detect":
        from edgekd.workflows.detection import run_train_detect

        cfg = _train_config(args, detect=True)
        summary = run_train_detect(
            args.data, args.arch or "m", cfg, args.out, args.input_size, args.resume, show_progress=not args.quiet
        )
        _print_detection(summary, f"trained {args.out / 'model.pt'}")
        return 0
    from edgekd.workflows.classification import ModelChoice, run_train

    summary = run_train(
        args.data,
        ModelChoice(args.arch or "resnet", args.width, args.depth),
        _train_config(args),
        args.out,
        resume=args.resume,
        labels=args.labels,
        show_progress=not args.quiet,
    )
    _print_summary(summary, f"trained {args.out / 'model.pt'}")
    return 0


def cmd_distill(args) -> int:
    if args.task == "detect":
        from edgekd.workflows.detection import run_distill_detect

        if not args.teacher:
            raise EdgeKDError(
                "detection distillation needs --teacher MODEL.pt or a face teacher (retinaface, blazeface, haar)"
            )
        summary = run_distill_detect(
            args.data,
            args.student_arch or "mcu-face",
            str(args.teacher),
            args.mode,
            _train_config(args, detect=True),
            _distill_config(args),
            args.out,
            args.input_size,
            args.unlabeled or 0,
            args.unlabeled_dir,
            args.soft,
            args.resume,
            show_progress=not args.quiet,
        )
        _print_detection(summary, f"distilled ({args.mode}) -> {args.out / 'model.pt'}")
        return 0
    from edgekd.workflows.classification import ModelChoice, run_distill

    if args.teacher and args.teacher_arch:
        raise EdgeKDError("give either --teacher MODEL.pt or --teacher-arch, not both")
    teacher = (
        ModelChoice(path=args.teacher)
        if args.teacher
        else (ModelChoice(args.teacher_arch, args.teacher_width, args.teacher_depth) if args.teacher_arch else None)
    )
    summary = run_distill(
        args.data,
        ModelChoice(args.student_arch or "thesis", args.student_width, args.student_depth),
        teacher,
        _train_config(args),
        _distill_config(args),
        args.out,
        resume=args.resume,
        labels=args.labels,
        cache_dir=args.cache_dir,
        show_progress=not args.quiet,
    )
    _print_summary(summary, f"{summary['scheme']} {summary['method']} -> {args.out / 'model.pt'}")
    return 0


def cmd_tune(args) -> int:
    from edgekd.data.classification import load_dataset
    from edgekd.train.tune import trials_table, tune_distillation
    from edgekd.workflows.classification import ModelChoice

    cfg = _train_config(args)
    splits = load_dataset(args.data)
    teacher = ModelChoice(path=args.teacher).build(splits)
    student = ModelChoice(args.student_arch, args.student_width, args.student_depth)
    tune = TuneConfig(
        trials=args.trials, methods=tuple(args.methods.split(",")), epochs=args.epochs or TuneConfig().epochs
    )
    storage = args.out / "study.db"
    study = tune_distillation(
        lambda: student.build(splits),
        teacher,
        splits,
        cfg,
        DistillConfig(),
        tune,
        storage,
        args.study_name,
        cache_dir=args.cache_dir,
        show_progress=not args.quiet,
    )
    rows = trials_table(study)
    table = Table(title=f"study {args.study_name} ({storage})")
    for col in ("trial", "method", "alpha", "temperature", "val top-1", "state"):
        table.add_column(col, justify="right")
    for r in rows:
        value = f"{r['value'] * 100:.2f} %" if r["value"] is not None else "-"
        table.add_row(
            str(r["trial"]),
            str(r.get("method", tune.methods[0])),
            f"{r.get('alpha', 0):.3f}",
            f"{r.get('temperature', 0):.2f}",
            value,
            r["state"],
        )
    console.print(table)
    best = {"value": study.best_value, "params": study.best_params, "trial": study.best_trial.number}
    console.print(f"best trial {best['trial']}: val top-1 {best['value'] * 100:.2f} % with {best['params']}")
    (args.out / "tune.json").write_text(json.dumps({"best": best, "trials": rows}, indent=2))
    return 0


def cmd_eval(args) -> int:
    from edgekd.models import load_model

    model, meta = load_model(args.model)
    if meta.get("task") == "detect":
        from edgekd.workflows.detection import run_eval_detect

        summary = run_eval_detect(args.model, args.data, meta, model)
        _print_detection(summary, f"{args.model} on {summary['dataset']} test")
        if args.json:
            args.json.write_text(json.dumps(summary, indent=2))
        return 0
    from edgekd.workflows.classification import run_eval

    summary = run_eval(args.model, args.data)
    test = summary["test"]
    table = Table(
        title=f"{args.model} on {summary['dataset']['name']} test ({test['n']} images): "
        f"top-1 {test['top1'] * 100:.2f} %"
    )
    for col in ("class", "precision", "recall", "support"):
        table.add_column(col, justify="right")
    for cls, m in test["per_class"].items():
        table.add_row(cls, f"{m['precision'] * 100:.1f} %", f"{m['recall'] * 100:.1f} %", str(m["support"]))
    console.print(table)
    console.print("confusion matrix (rows: true, columns: predicted)")
    for row in test["confusion_matrix"]:
        console.print(" ".join(f"{v:6d}" for v in row))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


def _print_detection(summary: dict, title: str) -> None:
    """The seeds' comparison layout: losses, precision, recall, mAP@0.5, mAP@0.5:0.95, speed."""
    table = Table(title=title)
    for col in (
        "model",
        "params",
        "MACs",
        "epoch s",
        "box loss",
        "cls loss",
        "P",
        "R",
        "mAP50",
        "mAP50-95",
        "ms/img",
        "FPS",
    ):
        table.add_column(col, justify="right")
    model, test, last = summary["model"], summary["test"], (summary.get("history") or [{}])[-1]
    ms = summary.get("latency_ms_batch1", test["ms_per_image"])
    spec = model["spec"]
    table.add_row(
        f"det-{spec['scale']} {spec['input_size']}px",
        f"{model['params']:,}",
        f"{model['macs']:,}",
        f"{last.get('seconds', 0):.1f}" if last else "-",
        f"{last.get('box', 0):.3f}" if last else "-",
        f"{last.get('heatmap', 0):.3f}" if last else "-",
        f"{test['precision']:.3f}",
        f"{test['recall']:.3f}",
        f"{test['map50']:.3f}",
        f"{test['map']:.3f}",
        f"{ms:.2f}",
        f"{1000 / ms:.0f}",
    )
    console.print(table)


def cmd_pseudo_label(args) -> int:
    from edgekd.workflows.detection import run_pseudo_label

    result = run_pseudo_label(args.teacher, args.images, args.out, args.threshold)
    console.print(f"{result['boxes']} boxes on {result['images']} images -> YOLO labels in {result['labels_dir']}")
    return 0


def cmd_export(args) -> int:
    import os
    import warnings

    # The converters log through absl/C++ and warn through Python; a CLI user wants the verdict, not that.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore")
    from edgekd.errors import ExportError
    from edgekd.workflows.export import FORMATS, TARGETS, run_export

    if args.formats is None:
        formats = TARGETS[args.target]
    else:
        formats = list(FORMATS) if args.formats == "all" else [f.strip() for f in args.formats.split(",")]
    cfg = ExportConfig(max_drop=args.max_drop, calibration_images=args.calibration_images, qat_epochs=args.qat_epochs)
    try:
        summary = run_export(args.model, args.out, formats, args.data, cfg, args.target)
        failed = None
    except ExportError as error:
        summary, failed = json.loads((args.out / "export.json").read_text()), error
    _print_export(summary)
    if failed:
        raise failed
    return 0


def _print_export(summary: dict) -> None:
    metric = "mAP@0.5" if summary["task"] == "detect" else "top-1"
    key = "map50" if summary["task"] == "detect" else "top1"
    table = Table(title=f"export of {summary['model_file']} (torch {metric} {summary['reference'][key]:.4f})")
    for column in ("format", "status", "size", metric, "drop (pts)", "max |err|", "min cosine", "file"):
        table.add_column(column, justify="left" if column in ("format", "status", "file") else "right")
    for fmt, result in summary["formats"].items():
        comparison = result.get("comparison", {})
        table.add_row(
            fmt,
            "[green]verified[/]" if "error" not in result else "[red]FAILED[/]",
            f"{result['size_bytes'] / 1024:.1f} KB" if "size_bytes" in result else "-",
            f"{result['test'][key]:.4f}" if "test" in result else "-",
            f"{result['drop_points']:.2f}" if "drop_points" in result else "-",
            f"{comparison['max_abs_error']:.2g}" if "max_abs_error" in comparison else "-",
            f"{comparison['min_cosine']:.4f}" if "min_cosine" in comparison else "-",
            result.get("file", ""),
        )
    console.print(table)


def cmd_prune(args) -> int:
    from edgekd.config import PruneConfig
    from edgekd.workflows.prune import run_prune

    cfg = PruneConfig().with_overrides(
        kind=args.kind,
        sparsity=args.sparsity,
        scope=args.scope,
        macs_ratio=args.macs_ratio,
        round_to=args.round_to,
        steps=args.steps,
        epochs=args.epochs,
    )
    dcfg = DistillConfig(method="none").with_overrides(
        method=args.method, alpha=args.alpha, temperature=args.temperature
    )
    train = {"lr": args.lr, "batch_size": args.batch_size, "seed": args.seed, "threads": args.threads}
    summary = run_prune(args.model, cfg, args.out, args.data, args.teacher, dcfg, train, show_progress=not args.quiet)
    _print_prune(summary, f"{cfg.kind} pruning of {args.model} -> {args.out / 'model.pt'}")
    return 0


def _print_prune(summary: dict, title: str) -> None:
    detect = summary["task"] == "detect"
    metrics = ("map50", "map") if detect else ("top1",)
    table = Table(title=title)
    for column in ("", "params", "MACs", "sparsity", "dense KB", "nonzero KB", "zip KB", *metrics):
        table.add_column(column, justify="left" if not column else "right")
    for row in ("before", "after"):
        m = summary[row]
        table.add_row(
            row,
            f"{m['params']:,}",
            f"{m['macs']:,}",
            f"{m['sparsity'] * 100:.1f} %",
            *(f"{m[key] / 1024:.1f}" for key in ("dense_bytes", "nonzero_bytes", "zip_bytes")),
            *(f"{m[key]:.3f}" if detect else f"{m[key] * 100:.2f} %" for key in metrics),
        )
    console.print(table)


def _add_prune_parser(sub) -> None:
    from edgekd.config import PruneConfig

    d = PruneConfig()
    p = sub.add_parser(
        "prune",
        help="prune a classifier or detector (magnitude: zeros that compress; structured: fewer channels and MACs), "
        "fine-tune, compare before/after",
    )
    p.add_argument("model", type=Path, help="model file (model.pt)")
    p.add_argument(
        "--kind",
        choices=["magnitude", "structured"],
        default=d.kind,
        help="magnitude: zero the smallest weights; structured: remove whole channels (default %(default)s)",
    )
    p.add_argument("--sparsity", type=float, help=f"magnitude: fraction of weights set to zero (default {d.sparsity})")
    p.add_argument(
        "--scope",
        choices=["global", "layer"],
        help=f"magnitude: one threshold for all layers or the same sparsity per layer (default {d.scope})",
    )
    p.add_argument(
        "--macs-ratio", type=float, help=f"structured: keep at most this fraction of the MACs (default {d.macs_ratio})"
    )
    p.add_argument("--round-to", type=int, help="structured: keep channel counts multiples of this (e.g. 8)")
    p.add_argument(
        "--steps", type=int, help=f"gradual pruning steps on a cubic schedule, each fine-tuned (default {d.steps})"
    )
    p.add_argument("--epochs", type=int, help=f"fine-tuning epochs after each step; 0: none (default {d.epochs})")
    p.add_argument("--data", help="dataset to fine-tune and evaluate on (default: the model's own)")
    p.add_argument("--teacher", help="teacher model file for a distillation fine-tuning loss")
    p.add_argument(
        "--method",
        default="none",
        help="fine-tuning loss: none (labels only), or with --teacher a classifier method (kd, fitnets, rkd, sp, "
        "dkd) or a detector one (response, feature) (default %(default)s)",
    )
    p.add_argument("--alpha", type=float, help=f"kd: weight of the hard-label loss (default {DistillConfig().alpha})")
    p.add_argument(
        "--temperature", "-T", type=float, help=f"softmax temperature (default {DistillConfig().temperature})"
    )
    p.add_argument("--lr", type=float, help=f"fine-tuning lr (default: the training lr x {d.lr_scale})")
    p.add_argument("--batch-size", type=int, help="mini-batch size (default: as in training)")
    p.add_argument("--seed", type=int, help="seed of batch order and augmentation")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--out", type=Path, required=True, help="output folder: model.pt, summary.json")
    p.add_argument("--quiet", action="store_true", help="no progress bars (one line per epoch)")
    p.set_defaults(func=cmd_prune)


def cmd_inspect(args) -> int:
    from edgekd.export.inspect import inspect_model

    report = inspect_model(args.model, measure=not args.no_measure)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_inspect(report)
    return 0


def _bytes(n: int) -> str:
    return f"{n:,} B ({n / 1024:.1f} KB)"


def _print_inspect(report: dict) -> None:
    ops = Table(title=f"ops of {report['file']}")
    for column in ("op", "count", "MACs", "share"):
        ops.add_column(column, justify="left" if column == "op" else "right")
    for row in report["ops"]:
        share = row["macs"] / report["macs"] * 100 if report["macs"] else 0
        ops.add_row(row["op"], str(row["count"]), f"{row['macs']:,}", f"{share:.1f} %" if row["macs"] else "")
    console.print(ops)
    summary = Table(title="summary", show_header=False)
    summary.add_column("", style="bold")
    summary.add_column("")
    peak = report["peak_activations"]
    tflm = report["tflm"]
    rows = [
        ("format", f"{report['format']} {report['precision']}"),
        ("file size", _bytes(report["size_bytes"])),
        ("ops / tensors", f"{report['op_count']} / {report['tensors']}"),
        ("params", f"{report['params']:,}"),
        ("weight bytes", _bytes(report["weight_bytes"])),
        ("MACs", f"{report['macs']:,}"),
        ("peak activations", f"{_bytes(peak['bytes'])} at {peak['op']}"),
    ]
    if "arena_estimate" in tflm:
        estimate = tflm["arena_estimate"]
        parts = f"planned activations {estimate['planned_activations']:,} + runtime {estimate['runtime_overhead']:,}"
        rows.append(("TFLM arena estimate", f"{_bytes(estimate['estimate'])}: {parts}"))
        measured = tflm["measured"]
        if measured:
            text = f"{_bytes(measured['arena_bytes'])} (±{measured['resolution_bytes']} B), estimate off by "
            rows.append(("TFLM arena measured", text + f"{measured['relative_error'] * 100:+.2f} %"))
        else:
            rows.append(("TFLM arena measured", tflm.get("measured_note", "-")))
    ready = {"ready": "[green]ready[/]", "not ready": "[red]not ready[/]"}.get(tflm["readiness"], tflm["readiness"])
    rows.append(("TFLM readiness", ready))
    for name, value in rows:
        summary.add_row(name, value)
    console.print(summary)
    for problem in tflm["problems"]:
        console.print(f"  [red]-[/] {problem}")
    for note in report["notes"]:
        console.print(f"  note: {note}")
    manifest = report["manifest"]
    if manifest and "error" in manifest:
        console.print(f"manifest: [yellow]{manifest['error']}[/]")
    elif manifest:
        console.print(f"task: {manifest['task']}   labels: {', '.join(manifest['labels'] or [])}")
        test = (manifest.get("metrics") or {}).get("test") or {}
        scalars = ", ".join(f"{k} {v:.4f}" for k, v in test.items() if isinstance(v, float))
        if scalars:
            console.print(f"metrics ({manifest['metrics'].get('split', 'test')}): {scalars}")


def _add_inspect_parser(sub) -> None:
    p = sub.add_parser(
        "inspect",
        help="a .tflite / .onnx file's ops, params, MACs, memory, and whether TFLite Micro runs it (arena measured)",
    )
    p.add_argument("model", type=Path, help="model file (.tflite or .onnx)")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.add_argument("--no-measure", action="store_true", help="do not load the model in tflite-micro")
    p.set_defaults(func=cmd_inspect)


def cmd_bench(args) -> int:
    from edgekd.bench.bench import BenchOptions, bench_models, write_reports

    options = BenchOptions(
        runs=args.runs,
        seconds=args.seconds,
        warmup=args.warmup,
        threads=args.threads,
        task=args.task,
        labels=[label.strip() for label in args.labels.split(",")] if args.labels else None,
        data=args.data,
        max_images=args.max_images,
        device_id=args.device_id,
        device_kind=args.device_kind,
    )
    with console.status("") as status:
        reports = bench_models(args.models, options, lambda path: status.update(f"measuring {path}"))
    _print_bench(reports, options)
    if args.json_dir:
        for path in write_reports(reports, args.json_dir):
            console.print(f"report: {path}")
    failed = [r for r in reports if r["status"] != "ok"]
    for report in failed:
        err_console.print(f"[bold red]error:[/] {report['error']}")
    return 2 if failed else 0


def _print_bench(reports: list[dict], options) -> None:
    """One line per model, as `yolo benchmark` prints them: model | format | status | size | metric | ms | FPS."""
    runs = f"{options.seconds:g} s budget" if options.seconds else f"{options.runs} runs"
    table = Table(title=f"edgekd bench: {runs}, {options.warmup} warm-up, {options.threads} thread(s)")
    for column in ("model", "format", "runtime", "status", "size", "metric", "init ms", "p50 ms", "p95 ms", "FPS"):
        table.add_column(column, justify="left" if column in ("model", "format", "runtime", "status") else "right")
    for report in reports:
        model = report["model"]
        if report["status"] != "ok":
            table.add_row(model["file"], model.get("format", "-"), "-", f"[red]error[/]: {report['error']}")
            continue
        accuracy = report.get("accuracy")
        metric = "-"
        if accuracy:
            metric = f"{accuracy['primary']} {accuracy['metrics'][accuracy['primary']]:.4f}"
        latency = report["latency"]
        table.add_row(
            model["file"],
            f"{model['format']} {model['precision']}",
            f"{report['runtime']['name']} {report['runtime']['version']}",
            "[green]ok[/]" if model.get("verified") else "[yellow]ok (no manifest)[/]",
            f"{model['size_bytes'] / 1024:.1f} KB",
            metric,
            f"{report['init_ms']:.1f}",
            f"{latency['p50_ms']:.3f}",
            f"{latency['p95_ms']:.3f}",
            f"{latency['fps']:.1f}",
        )
    console.print(table)


def _add_bench_parser(sub) -> None:
    from edgekd.bench.report import DEVICE_KINDS

    p = sub.add_parser(
        "bench",
        help="latency (init, first, p50/p95/p99, FPS), memory and accuracy of .onnx / .tflite files, side by side; "
        "a JSON report per model",
    )
    p.add_argument("models", nargs="+", type=Path, metavar="MODEL", help="model files (.onnx, .tflite)")
    p.add_argument("--data", help="dataset whose test split gives top-1 / mAP (built-in name or path)")
    timing = p.add_mutually_exclusive_group()
    timing.add_argument("--runs", type=int, default=100, help="timed runs (default %(default)s)")
    timing.add_argument("--seconds", type=float, help="time budget per model instead of a run count")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs first (default %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="runtime threads (default %(default)s)")
    p.add_argument(
        "--task", choices=["classify", "detect"], help="for a model edgekd did not export (no manifest), e.g. a YOLO"
    )
    p.add_argument("--labels", help="with --task: comma-separated class names")
    p.add_argument("--max-images", type=int, help="with --data: score at most this many test images")
    p.add_argument("--device-id", help="device name in the reports (default: host name)")
    p.add_argument("--device-kind", choices=DEVICE_KINDS, help="default: detected (rpi, jetson) or host")
    p.add_argument("--json-dir", type=Path, help="write one JSON report per model here")
    p.set_defaults(func=cmd_bench)


def cmd_pipeline(args) -> int:
    from edgekd.pipeline.recipe import load_recipe
    from edgekd.pipeline.run import run_pipeline

    recipe = load_recipe(args.recipe, quick=args.quick)
    if args.check:
        console.print_json(data=recipe.to_dict())
        return 0
    run_dir = args.out or Path("runs") / f"{recipe.name}{'-quick' if args.quick else ''}"
    run = run_pipeline(recipe, run_dir, quick=args.quick)
    console.print(f"pipeline finished in {run['seconds'] / 60:.1f} min")
    status = cmd_report(argparse.Namespace(run_dir=run_dir))
    final = run["stages"]["export-final"]["result"]["files"]
    best = final.get("tflite-int8") or next(iter(final.values()))
    console.print(f"live demo with this model: edgekd demo face --model {best}")
    return status


def cmd_report(args) -> int:
    from edgekd.report.render import write_report

    with console.status("writing the report"):
        written = write_report(args.run_dir)
    console.print(f"report: {written['html']} ({written['rows']} models measured; markdown: {written['markdown']})")
    return 0


def _add_report_parser(sub) -> None:
    p = sub.add_parser("report", help="HTML + markdown report (tables, Pareto plots, curves, photos) of a pipeline run")
    p.add_argument("run_dir", type=Path, help="the folder `edgekd pipeline` wrote")
    p.set_defaults(func=cmd_report)


def _add_pipeline_parser(sub) -> None:
    p = sub.add_parser(
        "pipeline",
        help="the main job: teacher -> KD student -> pruned -> int8 -> exported, verified, benchmarked -> report",
    )
    p.add_argument("recipe", nargs="?", type=Path, help="recipe YAML (default: the shipped built-in face recipe)")
    p.add_argument("--out", type=Path, help="run folder (default: runs/<recipe name>); a rerun resumes it")
    p.add_argument("--quick", action="store_true", help="every stage, shortened to minutes: a smoke run")
    p.add_argument("--check", action="store_true", help="validate the recipe, print it with defaults, and stop")
    p.set_defaults(func=cmd_pipeline)


def cmd_demo(args) -> int:
    import signal
    import threading

    from edgekd.demo import face_demo

    stop = threading.Event()  # Ctrl-C or a service manager's SIGTERM ends the loop cleanly: the .mp4 is finalised
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        summary = face_demo(
            source=args.source,
            model=args.model,
            serve=args.serve,
            record=args.record,
            window=False if args.no_window else None,
            threads=args.threads,
            score_threshold=args.threshold,
            max_frames=args.max_frames,
            loop=args.loop,
            stop=stop,
            announce=lambda text: console.print(text, highlight=False),
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    latency = summary["latency"] or {}
    console.print(
        f"{summary['frames']} frames in {summary['seconds']:.1f} s: {summary['fps']:.1f} FPS end to end, detect p50 "
        f"{latency.get('p50_ms', 0):.2f} ms / p95 {latency.get('p95_ms', 0):.2f} ms, {summary['faces_per_frame']:.2f} "
        f"faces per frame ({summary['detector']}, {summary['runtime']}; {summary['stopped_by']})",
        highlight=False,
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


def _add_demo_parser(sub) -> None:
    p = sub.add_parser("demo", help="live demos on a camera, a video or a folder: `edgekd demo face`")
    kinds = p.add_subparsers(dest="demo", required=True, metavar="DEMO")
    p = kinds.add_parser(
        "face", help="real-time face detection: boxes, scores, FPS and latency in a window, a web page or an .mp4"
    )
    p.add_argument(
        "--source",
        default="0",
        help="camera index (V4L2), picam or picam:N (Raspberry Pi Camera Module, needs picamera2), video file, "
        "image folder or rtsp:// URL (default 0)",
    )
    p.add_argument(
        "--model",
        help="an exported .onnx / .tflite detector with its manifest (your distilled student), or blazeface, "
        "retinaface, haar (default blazeface)",
    )
    p.add_argument("--serve", metavar="HOST:PORT", help="serve the live stream and metrics, e.g. 0.0.0.0:8080")
    p.add_argument("--record", type=Path, metavar="OUT.mp4", help="write the annotated video (mp4v)")
    p.add_argument("--no-window", action="store_true", help="no window even when a display exists")
    p.add_argument("--threshold", type=float, help="minimum face score (default: the detector's)")
    p.add_argument("--threads", type=int, default=1, help="runtime threads (default %(default)s)")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--loop", action="store_true", help="replay a video or folder at its end")
    p.add_argument("--json", type=Path, help="write the run's summary (frames, FPS, latency) here")
    p.set_defaults(func=cmd_demo)


# Commands whose parser imports no torch: built alone, they start fast, and `bench` reports memory without torch's.
TORCH_FREE_COMMANDS = {
    "bench": _add_bench_parser,
    "inspect": _add_inspect_parser,
    "report": _add_report_parser,
    "demo": _add_demo_parser,
}
TORCH_FREE_COMMANDS.update(FLEET_COMMANDS)  # collect, fleet, deploy
TORCH_FREE_COMMANDS.update(MCU_COMMANDS)  # compile, bench-mcu


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with `command` one of TORCH_FREE_COMMANDS only that command's."""
    parser = argparse.ArgumentParser(
        prog="edgekd",
        description="Distil, prune, quantize and export small models for the Raspberry Pi and microcontrollers.",
    )
    parser.add_argument("--version", action="version", version=f"edgekd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if command in TORCH_FREE_COMMANDS:
        TORCH_FREE_COMMANDS[command](sub)
        return parser

    p = sub.add_parser("train", help="train a classifier on labels (a teacher, or a no-KD student baseline)")
    _model_options(p, "", None, "model (default: resnet; detect: m)")
    _train_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("distill", help="distil a teacher into a student (any method, any scheme)")
    p.add_argument(
        "--teacher",
        help="trained teacher model file (model.pt); detect: also a pre-trained face "
        "detector: retinaface, blazeface, haar",
    )
    _model_options(p, "teacher-", None, "teacher (online scheme, trained together from scratch)")
    _model_options(p, "student-", None, "student (default: thesis; detect: mcu-face)")
    _train_options(p)
    _distill_options(p)
    g = p.add_argument_group("detection distillation (--task detect)")
    g.add_argument(
        "--mode",
        choices=["pseudo", "response", "feature"],
        default="pseudo",
        help="pseudo: teacher's boxes become labels; response: dense soft heatmap + box KD; "
        "feature: neck imitation masked to objects",
    )
    g.add_argument("--soft", action="store_true", help="pseudo: keep low-confidence boxes weighted by confidence")
    g.add_argument("--unlabeled", type=int, help="pseudo: N extra unlabeled images of a built-in set to label")
    g.add_argument("--unlabeled-dir", type=Path, help="pseudo: a folder of unlabeled images to label")
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser("tune", help="Bayesian optimisation (optuna TPE) of alpha and temperature, resumable")
    p.add_argument("--teacher", type=Path, required=True, help="trained teacher model file")
    _model_options(p, "student-", "thesis", "student")
    _train_options(p)
    p.add_argument("--trials", type=int, default=TuneConfig().trials, help="finished trials to reach")
    p.add_argument("--methods", default="kd", help="comma-separated methods to search over, e.g. kd,dkd")
    p.add_argument("--study-name", default="kd", help="optuna study name inside OUT/study.db")
    p.add_argument("--cache-dir", type=Path, help="store teacher outputs here and reuse them across trials")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("pseudo-label", help="write a teacher's detections on a folder of images as YOLO labels")
    p.add_argument("images", type=Path, help="folder of images")
    p.add_argument("--teacher", required=True, help="detector model.pt or retinaface, blazeface, haar")
    p.add_argument("--out", type=Path, required=True, help="folder for <image>.txt label files")
    p.add_argument(
        "--threshold",
        type=float,
        default=DistillConfig().det_pseudo_threshold,
        help="keep detections scoring at least this",
    )
    p.set_defaults(func=cmd_pseudo_label)

    p = sub.add_parser("export", help="ONNX / TFLite, fp32 / int8, each verified against torch, with a manifest")
    p.add_argument("model", type=Path, help="model file (model.pt)")
    p.add_argument(
        "--target",
        choices=["cpu", "rpi", "mcu"],
        default="cpu",
        help="cpu: every format; rpi: onnx, tflite, tflite-int8; mcu: tflite-int8 that TFLite Micro must run",
    )
    p.add_argument(
        "--formats", help="comma-separated: onnx, onnx-int8, tflite, tflite-int8, or all (default: the target's)"
    )
    p.add_argument("--out", type=Path, required=True, help="folder for the exported files and their manifests")
    p.add_argument("--data", help="calibration / verification dataset (default: the model's own)")
    p.add_argument(
        "--max-drop",
        type=float,
        default=ExportConfig().max_drop,
        help="top-1 / mAP@0.5 points an int8 file may lose against torch (default %(default)s)",
    )
    p.add_argument(
        "--calibration-images",
        type=int,
        default=ExportConfig().calibration_images,
        help="validation images that set the int8 ranges (default %(default)s)",
    )
    p.add_argument(
        "--qat-epochs",
        type=int,
        default=ExportConfig().qat_epochs,
        help="quantization-aware fine-tuning epochs when int8 loses more than --max-drop; 0: never",
    )
    p.set_defaults(func=cmd_export)

    _add_pipeline_parser(sub)
    _add_prune_parser(sub)
    _add_inspect_parser(sub)
    _add_bench_parser(sub)
    for add_fleet_parser in FLEET_COMMANDS.values():
        add_fleet_parser(sub)
    for add_mcu_parser in MCU_COMMANDS.values():
        add_mcu_parser(sub)
    _add_demo_parser(sub)
    _add_report_parser(sub)

    p = sub.add_parser("eval", help="classifier: top-1, per-class P/R, confusion; detector: P, R, mAP, ms/image")
    p.add_argument("model", type=Path, help="model file (model.pt)")
    p.add_argument("--data", help="dataset (default: the one the model was trained on)")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    try:
        return args.func(args)
    except EdgeKDError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        return 2
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        err_console.print(f"[bold red]error:[/] `edgekd {args.command}` needs torch: pip install 'edgekd[train]'")
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted; rerun with --resume to continue from the last finished epoch")
        return 130


if __name__ == "__main__":
    sys.exit(main())
