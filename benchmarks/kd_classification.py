"""The thesis' Table 1 rebuilt on Fashion-MNIST: teacher, student without KD, student with each method and scheme,
alpha/T tuned by Bayesian optimisation, and a low-label regime; mean +- std over seeds.

    python benchmarks/kd_classification.py            # full run (< 45 min on 2 CPU cores)
    python benchmarks/kd_classification.py --quick    # smoke run, a few minutes

Students train in a pool of worker processes (one torch thread each: small convolutions scale poorly across
threads, two processes do not). Every job writes epoch checkpoints, so a killed run continues where it stopped
when started again. Results: benchmarks/results/kd_classification[_quick].{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import bar_chart, environment, log, run_pool, summarise, targets_table  # noqa: E402
from edgekd.config import SPLIT_SEED, DistillConfig, TrainConfig, TuneConfig  # noqa: E402
from edgekd.data.classification import DatasetSplits, load_dataset, split_labeled, transfer_set  # noqa: E402
from edgekd.distill import build_method  # noqa: E402
from edgekd.distill.schemes import born_again, distill_online, fit_student, noisy_student  # noqa: E402
from edgekd.models import build_classifier, load_model, model_profile, save_model  # noqa: E402
from edgekd.train.tune import trials_table, tune_distillation  # noqa: E402


@dataclass
class Plan:
    """Sizes of one benchmark run; `full` reproduces the table, `quick` only smoke-tests every row."""

    data: str = "fashion-mnist"
    train_subset: int | None = None
    teacher: dict = field(default_factory=lambda: {"arch": "resnet", "width": 1.0, "depth": 1})
    student: dict = field(default_factory=lambda: {"arch": "thesis", "width": 1.0, "depth": 1})
    peer: dict = field(default_factory=lambda: {"arch": "thesis", "width": 2.0, "depth": 1})  # online scheme
    noisy_student: dict = field(default_factory=lambda: {"arch": "thesis", "width": 1.5, "depth": 1})
    teacher_epochs: int = 12
    student_epochs: int = 3
    seeds: tuple[int, ...] = (0, 1, 2)
    tune_trials: int = 8
    tune_epochs: int = 2
    low_labels: int = 1000
    low_label_epochs: int = 40  # over 1,000 images: ~0.75 of one full-data epoch in samples seen
    noisy_iterations: int = 2
    workers: int = 2


QUICK = Plan(
    train_subset=6000,
    teacher_epochs=3,
    student_epochs=2,
    seeds=(0, 1),
    tune_trials=3,
    tune_epochs=1,
    low_labels=500,
    low_label_epochs=10,
    noisy_iterations=1,
)


def base_cfg(plan: Plan, seed: int, **kw) -> TrainConfig:
    return TrainConfig(epochs=plan.student_epochs, batch_size=128, lr=0.05, seed=seed, threads=1).with_overrides(**kw)


def load_splits(plan: Plan) -> DatasetSplits:
    splits = load_dataset(plan.data)
    if plan.train_subset and plan.train_subset < len(splits.train):
        splits.train = splits.train.subset(np.arange(plan.train_subset))
    return splits


def make(spec: dict, splits: DatasetSplits, **extra):
    return build_classifier(
        spec["arch"],
        len(splits.classes),
        splits.train.image_shape[-1],
        width=spec["width"],
        depth=spec["depth"],
        **extra,
    )


# ---------------------------------------------------------------------------------------------- jobs (workers)
def run_job(job: dict) -> dict:
    """One student training run in a worker process; returns its measured figures."""
    torch.set_num_threads(1)
    plan, work = Plan(**job["plan"]), Path(job["work"])
    splits = load_splits(plan)
    seed, kind, run_dir = job["seed"], job["kind"], work / job["name"]
    torch.manual_seed(seed)
    teacher = load_model(work / "teacher" / "model.pt")[0]
    dcfg = DistillConfig(**job.get("distill", {}))
    cfg = base_cfg(plan, seed)
    cache = work / "teacher-cache"
    started = time.perf_counter()
    extra = {}
    if kind == "offline":
        student = make(plan.student, splits)
        method = build_method(dcfg.method, dcfg, student, teacher)
        run = fit_student(
            student,
            method,
            splits,
            cfg,
            teacher if method.needs_teacher else None,
            run_dir=run_dir,
            resume=True,
            cache_dir=cache,
            show_progress=False,
            label=job["name"],
        )
    elif kind == "online":
        run = distill_online(
            make(plan.student, splits),
            build_method("kd", dcfg),
            splits,
            cfg,
            make(plan.peer, splits),
            run_dir=run_dir,
            resume=True,
            show_progress=False,
            label=job["name"],
        )
        extra["peer_top1"] = run.extra["teacher_test"]["top1"]
    elif kind == "self":
        first = load_model(work / f"vanilla-s{seed}" / "model.pt")[0]
        run = born_again(
            lambda: make(plan.student, splits),
            build_method("kd", dcfg),
            splits,
            cfg,
            generations=1,
            first=first,
            run_dir=run_dir,
            resume=True,
            cache_dir=cache,
            show_progress=False,
        )
    elif kind == "low_vanilla":
        labeled, _ = split_labeled(splits.train, plan.low_labels, SPLIT_SEED)
        run = fit_student(
            make(plan.student, splits),
            build_method("none", dcfg),
            splits,
            replace(cfg, epochs=plan.low_label_epochs, augment=True),
            train_set=labeled,
            run_dir=run_dir,
            resume=True,
            show_progress=False,
            label=job["name"],
        )
    elif kind == "low_kd":
        labeled, unlabeled = split_labeled(splits.train, plan.low_labels, SPLIT_SEED)
        student = make(plan.student, splits)
        run = fit_student(
            student,
            build_method(dcfg.method, dcfg, student, teacher),
            splits,
            cfg,
            teacher,
            train_set=transfer_set(labeled, unlabeled),
            run_dir=run_dir,
            resume=True,
            cache_dir=cache,
            show_progress=False,
            label=job["name"],
        )
    elif kind == "noisy":
        labeled, unlabeled = split_labeled(splits.train, plan.low_labels, SPLIT_SEED)
        small_teacher = load_model(work / f"low-vanilla-s{seed}" / "model.pt")[0]
        run = noisy_student(
            small_teacher,
            lambda: make(plan.noisy_student, splits, dropout=dcfg.noisy_dropout),
            labeled,
            unlabeled,
            splits,
            cfg,
            iterations=plan.noisy_iterations,
            run_dir=run_dir,
            resume=True,
            show_progress=False,
        )
        extra.update({k: run.extra[k] for k in ("initial_teacher_top1", "rounds", "student_beats_teacher")})
    elif kind == "tune":
        study = tune_distillation(
            lambda: make(plan.student, splits),
            teacher,
            splits,
            cfg,
            DistillConfig(),
            TuneConfig(trials=plan.tune_trials, epochs=plan.tune_epochs, methods=("kd",)),
            run_dir / "study.db",
            "kd",
            cache_dir=cache,
            show_progress=False,
        )
        return {
            **job,
            "best": study.best_params,
            "best_val_top1": study.best_value,
            "trials": trials_table(study),
            "seconds": time.perf_counter() - started,
        }
    else:
        raise ValueError(kind)
    save_model(run_dir / "model.pt", run.model)
    return {**job, "test_top1": run.top1, "seconds": time.perf_counter() - started, "history": run.history, **extra}


# ------------------------------------------------------------------------------------------------ orchestration
def train_teacher(plan: Plan, splits: DatasetSplits, work: Path) -> dict:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    started = time.perf_counter()
    cfg = TrainConfig(epochs=plan.teacher_epochs, lr=0.1, augment=True, seed=0)
    run = fit_student(
        make(plan.teacher, splits),
        build_method("none", DistillConfig()),
        splits,
        cfg,
        run_dir=work / "teacher",
        resume=True,
        label="teacher",
        show_progress=sys.stderr.isatty(),
    )
    save_model(work / "teacher" / "model.pt", run.model, {"mean": splits.mean, "std": splits.std})
    return {"test_top1": run.top1, "seconds": time.perf_counter() - started, "history": run.history}


ROWS = [  # (row name, job kind, distill settings, knowledge kind, scheme)
    ("student, no KD", "offline", {"method": "none"}, "-", "-"),
    ("Hinton KD (alpha 0.5, T 4)", "offline", {"method": "kd"}, "response", "offline"),
    ("DKD (beta 8, T 4)", "offline", {"method": "dkd"}, "response", "offline"),
    ("FitNets hints", "offline", {"method": "fitnets"}, "feature", "offline"),
    ("RKD distance + angle", "offline", {"method": "rkd"}, "relation", "offline"),
    ("Similarity-preserving", "offline", {"method": "sp"}, "relation", "offline"),
    ("Deep mutual learning (peer thesis x2)", "online", {"method": "kd", "temperature": 1.0}, "response", "online"),
]


def job_name(row_kind: str, distill: dict, seed: int) -> str:
    method = distill.get("method", "kd")
    return f"{'vanilla' if method == 'none' else row_kind + '-' + method}-s{seed}"


def describe(result: dict) -> str:
    if "test_top1" in result:
        return f"test top-1 {result['test_top1'] * 100:.2f} %"
    return f"best {result['best']}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run (a few minutes)")
    parser.add_argument("--data", help="dataset (default fashion-mnist)")
    parser.add_argument("--workers", type=int, help="parallel training processes (default 2)")
    parser.add_argument("--fresh", action="store_true", help="discard checkpoints of an earlier run")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--work", type=Path, help="working folder (default benchmarks/.work/kd_classification)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    plan = replace(plan, data=args.data or plan.data, workers=args.workers or plan.workers)
    tag = "kd_classification" + ("_quick" if args.quick else "")
    work = args.work or ROOT / "benchmarks" / ".work" / tag
    if args.fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    splits = load_splits(plan)
    log(f"data {splits.describe()['sizes']}; training teacher {plan.teacher} for {plan.teacher_epochs} epochs")
    teacher = train_teacher(plan, splits, work)
    log(f"teacher test top-1 {teacher['test_top1'] * 100:.2f} % ({teacher['seconds']:.0f} s)")

    common = {"plan": asdict(plan), "work": str(work)}
    phase1 = [{**common, "name": "tune", "kind": "tune", "seed": 0}]
    for row, kind, distill, _, _ in ROWS:
        for seed in plan.seeds:
            phase1.append(
                {
                    **common,
                    "name": job_name(kind, distill, seed),
                    "row": row,
                    "kind": kind,
                    "distill": distill,
                    "seed": seed,
                }
            )
    for seed in plan.seeds:
        phase1.append(
            {
                **common,
                "name": f"low-vanilla-s{seed}",
                "row": "low: student, no KD",
                "kind": "low_vanilla",
                "seed": seed,
            }
        )
        phase1.append(
            {
                **common,
                "name": f"low-kd-s{seed}",
                "row": "low: Hinton KD on the transfer set",
                "kind": "low_kd",
                "distill": {"method": "kd"},
                "seed": seed,
            }
        )
    log(f"phase 1: {len(phase1)} jobs on {plan.workers} workers")
    results = run_pool(run_job, phase1, plan.workers, describe)

    best = next(r for r in results if r["kind"] == "tune")
    tuned = {"method": "kd", "alpha": best["best"]["alpha"], "temperature": best["best"]["temperature"]}
    phase2 = []
    for seed in plan.seeds:
        phase2.append(
            {
                **common,
                "name": f"tuned-kd-s{seed}",
                "row": "Hinton KD, alpha/T tuned (optuna TPE)",
                "kind": "offline",
                "distill": tuned,
                "seed": seed,
            }
        )
        phase2.append(
            {
                **common,
                "name": f"self-kd-s{seed}",
                "row": "Born-again (self, KD from gen 0)",
                "kind": "self",
                "distill": {"method": "kd"},
                "seed": seed,
            }
        )
        phase2.append(
            {
                **common,
                "name": f"noisy-s{seed}",
                "row": "low: Noisy Student (x1.5, expansion)",
                "kind": "noisy",
                "seed": seed,
            }
        )
    log(f"phase 2: {len(phase2)} jobs (tuned alpha {tuned['alpha']:.3f}, T {tuned['temperature']:.2f})")
    results += run_pool(run_job, phase2, plan.workers, describe)
    total_minutes = (time.perf_counter() - t0) / 60

    report = build_report(plan, splits, teacher, results, best, total_minutes)
    write_report(report, args.results, tag)
    log(f"done in {total_minutes:.1f} min -> {args.results / tag}.json/.md/.png")
    return 0


def build_report(plan, splits, teacher, results, best, total_minutes) -> dict:
    shape = splits.train.image_shape
    chw = (shape[2], shape[0], shape[1])
    profiles = {
        name: model_profile(make(getattr(plan, name), splits), chw)
        for name in ("teacher", "student", "peer", "noisy_student")
    }
    rows = {}
    for r in results:
        if "row" not in r:
            continue
        entry = rows.setdefault(r["row"], {"row": r["row"], "seeds": [], "top1": [], "seconds": [], "extra": []})
        entry["seeds"].append(r["seed"])
        entry["top1"].append(r["test_top1"])
        entry["seconds"].append(r["seconds"])
        if "student_beats_teacher" in r or "peer_top1" in r:
            entry["extra"].append(
                {k: r[k] for k in ("initial_teacher_top1", "student_beats_teacher", "rounds", "peer_top1") if k in r}
            )
    for entry in rows.values():
        entry.update(summarise(entry["top1"]))
        entry["model"] = "noisy_student" if entry["row"].startswith("low: Noisy") else "student"
    vanilla, low_vanilla = rows["student, no KD"], rows["low: student, no KD"]
    kd_rows = [r for name, r in rows.items() if not name.startswith("low") and r is not vanilla]
    best_kd = max(kd_rows, key=lambda r: r["mean"])
    low_kd = rows["low: Hinton KD on the transfer set"]
    t = teacher["test_top1"]
    spread = max(vanilla["std"], best_kd["std"])
    targets = {
        "teacher >= 92 % top-1": {"value": t, "met": t >= 0.92},
        "student >= 10x fewer params": {
            "value": profiles["teacher"]["params"] / profiles["student"]["params"],
            "met": profiles["teacher"]["params"] >= 10 * profiles["student"]["params"],
        },
        "best KD beats vanilla by > 2 seed std": {
            "value": {"best": best_kd["row"], "gain": best_kd["mean"] - vanilla["mean"], "2std": 2 * spread},
            "met": best_kd["mean"] - vanilla["mean"] > 2 * spread,
        },
        "best KD closes >= 30 % of the gap (all labels)": {
            "value": (best_kd["mean"] - vanilla["mean"]) / (t - vanilla["mean"]),
            "met": (best_kd["mean"] - vanilla["mean"]) / (t - vanilla["mean"]) >= 0.30,
        },
        f"KD closes >= 50 % of the gap ({plan.low_labels} labels)": {
            "value": (low_kd["mean"] - low_vanilla["mean"]) / (t - low_vanilla["mean"]),
            "met": (low_kd["mean"] - low_vanilla["mean"]) / (t - low_vanilla["mean"]) >= 0.50,
        },
        "full run < 45 min": {"value": total_minutes, "met": total_minutes < 45},
    }
    return {
        "benchmark": "kd_classification",
        "plan": asdict(plan),
        "dataset": splits.describe(),
        "environment": environment(plan.workers),
        "profiles": profiles,
        "teacher": teacher,
        "rows": list(rows.values()),
        "tuning": best,
        "targets": targets,
        "total_minutes": total_minutes,
    }


def write_report(report: dict, folder: Path, tag: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{tag}.json").write_text(json.dumps(report, indent=2, default=str))
    p, t = report["profiles"], report["teacher"]
    lines = [
        f"# Knowledge distillation on {report['dataset']['name']} (thesis Table 1 layout)",
        "",
        f"Measured by `benchmarks/kd_classification.py{' --quick' if 'quick' in tag else ''}` in "
        f"{report['total_minutes']:.1f} min on {report['environment']['cpu']} "
        f"({report['plan']['workers']} worker processes); test split of {report['dataset']['sizes']['test']} "
        f"images; mean +- std over seeds {report['plan']['seeds']}.",
        "",
        "| model | knowledge | params | MACs | top-1 (%) | seeds |",
        "|---|---|---:|---:|---:|---|",
        f"| teacher ({report['plan']['teacher']['arch']}) | - | {p['teacher']['params']:,} | "
        f"{p['teacher']['macs']:,} | {t['test_top1'] * 100:.2f} | 0 |",
    ]
    kinds = {
        "Noisy": "pseudo-labels (expansion)",
        "transfer set": "response (transfer set)",
        "low": "labels only",
        "Hinton": "response",
        "DKD": "response",
        "FitNets": "feature",
        "RKD": "relation",
        "Similarity": "relation",
        "Deep": "response (online)",
        "Born": "response (self)",
    }
    for r in report["rows"]:
        kind = next((v for k, v in kinds.items() if k in r["row"]), "-")
        prof = p[r["model"]]
        per_seed = ", ".join(f"{v * 100:.2f}" for v in r["values"])
        lines.append(
            f"| {r['row']} | {kind} | {prof['params']:,} | {prof['macs']:,} | "
            f"{r['mean'] * 100:.2f} +- {r['std'] * 100:.2f} | {per_seed} |"
        )
    lines += [
        "",
        f"Tuning: {report['plan']['tune_trials']} optuna TPE trials of {report['plan']['tune_epochs']} "
        f"epoch(s) on validation top-1; best alpha {report['tuning']['best']['alpha']:.3f}, "
        f"T {report['tuning']['best']['temperature']:.2f}.",
    ]
    lines += targets_table(report["targets"])
    noisy = next((r for r in report["rows"] if "Noisy" in r["row"]), None)
    if noisy:
        beats = [e["student_beats_teacher"] for e in noisy["extra"]]
        lines += [
            "",
            f"Noisy Student (knowledge expansion): the student beat its own teacher in {sum(beats)} of "
            f"{len(beats)} seeds; per seed: "
            + "; ".join(
                f"teacher {e['initial_teacher_top1'] * 100:.2f} % -> student {e['rounds'][-1]['test_top1'] * 100:.2f} %"
                for e in noisy["extra"]
            ),
        ]
    (folder / f"{tag}.md").write_text("\n".join(lines) + "\n")
    plot(report, folder / f"{tag}.png")


def plot(report: dict, path: Path) -> None:
    rows = report["rows"]
    bar_chart(
        [r["row"] for r in rows],
        [r["mean"] * 100 for r in rows],
        [r["std"] * 100 for r in rows],
        report["teacher"]["test_top1"] * 100,
        "teacher",
        "test top-1 (%)",
        f"Distillation on {report['dataset']['name']}: mean +- std over seeds",
        path,
    )


if __name__ == "__main__":
    sys.exit(main())
