"""The seeds' YOLOv5x -> YOLOv5n experiment, our way, on the built-in face set: teacher (m) vs student (n) without
KD vs student with each detection-KD mode, plus pseudo-labels from a pre-trained RetinaFace; mean +- std over seeds;
params, MACs, precision, recall, mAP@0.5, mAP@0.5:0.95, CPU ms/image; detections drawn on real face photos.

    python benchmarks/kd_detection.py            # full run (< 45 min on 2 CPU cores)
    python benchmarks/kd_detection.py --quick    # smoke run

Results: benchmarks/results/kd_detection[_quick].{json,md,png} and kd_detection_<photo>.png.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import bar_chart, environment, log, run_pool, summarise, targets_table  # noqa: E402
from edgekd.config import DETECTION_TRAIN, DistillConfig  # noqa: E402
from edgekd.data.detection.builtin import face_composite, real_face_photos  # noqa: E402
from edgekd.distill.detection import build_detection_method, pseudo_label  # noqa: E402
from edgekd.distill.detection.pseudo_label import concat  # noqa: E402
from edgekd.distill.schemes.detection import fit_detector  # noqa: E402
from edgekd.models.checkpoint import load_model, save_model  # noqa: E402
from edgekd.models.detectors import activation_peak_bytes, build_detector  # noqa: E402
from edgekd.models.profile import model_profile  # noqa: E402
from edgekd.runtime.postprocess import box_iou  # noqa: E402
from edgekd.train.detection_eval import detect, latency_ms  # noqa: E402
from edgekd.workflows.detection import TeacherDetector  # noqa: E402

# Face boxes in the real photos, read off a 10 px grid by hand (x1, y1, x2, y2).
PHOTO_FACES = {"astronaut": (178, 62, 272, 174), "grace_hopper": (165, 130, 365, 330)}
MCU_WEIGHT_BUDGET, MCU_ACTIVATION_BUDGET = 100 * 1024, 64 * 1024


@dataclass
class Plan:
    size: int = 96
    channels: int = 1
    train_images: int = 1000
    unlabeled_images: int = 1000  # extra images without labels, labelled by the teacher
    teacher_scale: str = "m"
    student_scale: str = "n"
    teacher_epochs: int = 60
    student_epochs: int = 40
    seeds: tuple[int, ...] = (0, 1, 2)
    workers: int = 2


QUICK = Plan(train_images=200, unlabeled_images=100, teacher_epochs=3, student_epochs=2, seeds=(0, 1))

ROWS = [  # (row, mode, teacher, soft)
    ("student n, no KD", "none", None, False),
    ("pseudo-labels, hard (teacher m)", "pseudo", "teacher", False),
    ("pseudo-labels, soft (teacher m)", "pseudo", "teacher", True),
    ("dense response KD (teacher m)", "response", "teacher", False),
    ("feature imitation, masked (teacher m)", "feature", "teacher", False),
    ("pseudo-labels, hard (RetinaFace)", "pseudo", "retinaface", False),
]


def datasets(plan: Plan):
    splits = [
        face_composite(s, plan.size, plan.channels, plan.train_images if s == "train" else None)
        for s in ("train", "val", "test")
    ]
    pool = face_composite("train", plan.size, plan.channels, plan.unlabeled_images, seed=7919)
    return (*splits, pool)


def train_cfg(plan: Plan, seed: int, epochs: int):
    return replace(DETECTION_TRAIN, epochs=epochs, seed=seed, threads=1)


def pseudo_set(work: Path, teacher: str, train, pool, soft: bool):
    """Teacher labels are computed once per (teacher, variant) and shared by every seed."""
    path = work / f"pseudo-{teacher}-{'soft' if soft else 'hard'}.pt"
    if path.exists():
        return torch.load(path, weights_only=False)
    dcfg = DistillConfig()
    detector = TeacherDetector(str(work / "teacher" / "model.pt") if teacher == "teacher" else teacher)
    labelled = pseudo_label(
        detector.detect,
        pool,
        dcfg.det_soft_floor if soft else dcfg.det_pseudo_threshold,
        soft,
        detector.class_map(train.classes),
    )
    combined = concat(train, labelled, f"train+pseudo-{teacher}")
    combined.info["pseudo_boxes"] = labelled.num_boxes
    torch.save(combined, path)
    return combined


def run_job(job: dict) -> dict:
    torch.set_num_threads(1)
    plan, work = Plan(**job["plan"]), Path(job["work"])
    train, val, test, pool = datasets(plan)
    seed = job["seed"]
    torch.manual_seed(seed)
    student = build_detector(plan.student_scale, 1, plan.channels, plan.size)
    teacher = load_model(work / "teacher" / "model.pt")[0]
    train_set, extra = train, {}
    if job["mode"] == "pseudo":
        train_set = torch.load(
            work / f"pseudo-{job['teacher']}-{'soft' if job['soft'] else 'hard'}.pt", weights_only=False
        )
        extra["pseudo_boxes"] = train_set.info["pseudo_boxes"]
    method = build_detection_method(
        "none" if job["mode"] in ("none", "pseudo") else job["mode"], DistillConfig(), student, teacher
    )
    started = time.perf_counter()
    run = fit_detector(
        student,
        method,
        train_set,
        val,
        test,
        train_cfg(plan, seed, plan.student_epochs),
        teacher=teacher if method.needs_teacher else None,
        run_dir=work / job["name"],
        resume=True,
        label=job["name"],
        show_progress=False,
    )
    save_model(work / job["name"] / "model.pt", run.model, {"task": "detect", **run.extra})
    return {**job, "test": run.test, "seconds": time.perf_counter() - started, "history": run.history, **extra}


def photo_check(models: dict, folder: Path, tag: str) -> dict:
    """Each model on the real face photos: IoU of the best detection with the face, false positives, an image."""
    results = {}
    photos = [(n, img) for n, img in real_face_photos() if n in PHOTO_FACES]
    for name, image in photos:
        canvas = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        face = np.array([PHOTO_FACES[name]], np.float32)
        cv2.rectangle(canvas, face[0, :2].astype(int), face[0, 2:].astype(int), (255, 255, 255), 2)
        for (label, (model, threshold)), colour in zip(models.items(), [(0, 0, 255), (0, 200, 0)], strict=False):
            boxes, scores, _ = detect(model, [image], threshold)[0][0]
            ious = box_iou(boxes, face)[:, 0] if len(boxes) else np.zeros(0)
            results.setdefault(label, {})[name] = {
                "best_iou": float(ious.max()) if len(ious) else 0.0,
                "detections": len(boxes),
                "false_positives": int((ious < 0.5).sum()),
                "scores": [round(float(s), 3) for s in scores],
            }
            for box, score in zip(boxes, scores, strict=True):
                cv2.rectangle(canvas, box[:2].astype(int), box[2:].astype(int), colour, 2)
                cv2.putText(
                    canvas,
                    f"{label} {score:.2f}",
                    (int(box[0]), max(12, int(box[1]) - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    0.45,
                    colour,
                    1,
                )
        cv2.imwrite(str(folder / f"{tag}_{name}.png"), canvas)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int)
    parser.add_argument("--fresh", action="store_true", help="discard checkpoints of an earlier run")
    parser.add_argument(
        "--reevaluate",
        action="store_true",
        help="evaluate the finished checkpoints of the last run again (after an evaluation change); the run time "
        "reported stays that of the run that trained them",
    )
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--work", type=Path)
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    plan = replace(plan, workers=args.workers or plan.workers)
    tag = "kd_detection" + ("_quick" if args.quick else "")
    work = args.work or ROOT / "benchmarks" / ".work" / tag
    if args.fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    train, val, test, pool = datasets(plan)
    log(
        f"faces: {len(train)} train ({train.num_boxes} boxes), {len(val)} val, {len(test)} test, "
        f"{len(pool)} unlabeled; teacher {plan.teacher_scale} for {plan.teacher_epochs} epochs"
    )
    torch.set_num_threads(2)
    torch.manual_seed(0)
    teacher = build_detector(plan.teacher_scale, 1, plan.channels, plan.size)
    started = time.perf_counter()
    teacher_run = fit_detector(
        teacher,
        build_detection_method("none", DistillConfig()),
        train,
        val,
        test,
        replace(train_cfg(plan, 0, plan.teacher_epochs), threads=2),
        run_dir=work / "teacher",
        resume=True,
        label="teacher",
        show_progress=sys.stderr.isatty(),
    )
    save_model(work / "teacher" / "model.pt", teacher_run.model, {"task": "detect", **teacher_run.extra})
    teacher_seconds = time.perf_counter() - started
    log(
        f"teacher mAP@0.5:0.95 {teacher_run.test['map']:.3f}, mAP@0.5 {teacher_run.test['map50']:.3f} "
        f"({teacher_seconds:.0f} s)"
    )
    for _, mode, source, soft in ROWS:
        if mode == "pseudo":
            combined = pseudo_set(work, source, train, pool, soft)
            log(
                f"pseudo-labels from {source} ({'soft' if soft else 'hard'}): {combined.info['pseudo_boxes']} boxes "
                f"on {len(pool)} unlabeled images"
            )

    common = {"plan": asdict(plan), "work": str(work)}
    jobs = [
        {
            **common,
            "name": f"{mode}-{source or 'labels'}-{'soft' if soft else 'hard'}-s{seed}",
            "row": row,
            "mode": mode,
            "teacher": source,
            "soft": soft,
            "seed": seed,
        }
        for row, mode, source, soft in ROWS
        for seed in plan.seeds
    ]
    jobs.sort(key=lambda j: j["mode"] in ("none",))  # long jobs first
    results = run_pool(
        run_job, jobs, plan.workers, lambda r: f"mAP@0.5:0.95 {r['test']['map']:.3f}, mAP@0.5 {r['test']['map50']:.3f}"
    )
    total_minutes = (time.perf_counter() - t0) / 60
    if args.reevaluate:
        previous = json.loads((args.results / f"{tag}.json").read_text())
        total_minutes, teacher_seconds = previous["total_minutes"], previous["teacher"]["seconds"]
    report = build_report(plan, teacher_run, teacher_seconds, results, work, total_minutes)
    args.results.mkdir(parents=True, exist_ok=True)
    report["photos"] = photo_check(
        {"teacher m": (teacher_run.model, teacher_run.extra["score_threshold"]), "best KD n": report["best_model"]},
        args.results,
        tag,
    )
    report["targets"].update(photo_targets(report["photos"]))
    write_report(report, args.results, tag)
    log(f"done in {total_minutes:.1f} min -> {args.results / tag}.json/.md/.png")
    return 0


def build_report(plan, teacher_run, teacher_seconds, results, work, total_minutes) -> dict:
    shape = (plan.channels, plan.size, plan.size)
    teacher_model = teacher_run.model
    student_model = build_detector(plan.student_scale, 1, plan.channels, plan.size)
    profiles = {"teacher": model_profile(teacher_model, shape), "student": model_profile(student_model, shape)}
    profiles["student"]["peak_activation_bytes_int8"] = activation_peak_bytes(student_model, shape)
    profiles["teacher"]["peak_activation_bytes_int8"] = activation_peak_bytes(teacher_model, shape)
    profiles["teacher"]["ms_per_image"] = latency_ms(teacher_model)
    profiles["student"]["ms_per_image"] = latency_ms(student_model)
    rows = {}
    for r in sorted(results, key=lambda r: [row[0] for row in ROWS].index(r["row"])):
        entry = rows.setdefault(r["row"], {"row": r["row"], "names": [], "seeds": [], "metrics": []})
        entry["names"].append(r["name"])
        entry["seeds"].append(r["seed"])
        entry["metrics"].append(r["test"])
        entry.setdefault("pseudo_boxes", r.get("pseudo_boxes"))
    for entry in rows.values():
        for key in ("precision", "recall", "map50", "map"):
            entry[key] = summarise([m[key] for m in entry["metrics"]])
    vanilla = rows[ROWS[0][0]]
    kd_rows = [r for r in rows.values() if r is not vanilla]
    best = max(kd_rows, key=lambda r: r["map"]["mean"])
    t_map = teacher_run.test["map"]
    gain = best["map"]["mean"] - vanilla["map"]["mean"]
    spread = max(vanilla["map"]["std"], best["map"]["std"])
    recovered = gain / (t_map - vanilla["map"]["mean"]) if t_map > vanilla["map"]["mean"] else float("nan")
    best_seed = int(np.argmax([m["map"] for m in best["metrics"]]))
    best_model, best_meta = load_model(work / best["names"][best_seed] / "model.pt")
    targets = {
        "student >= 10x fewer MACs than teacher": {
            "value": profiles["teacher"]["macs"] / profiles["student"]["macs"],
            "met": profiles["teacher"]["macs"] >= 10 * profiles["student"]["macs"],
        },
        "best KD beats vanilla on mAP@0.5:0.95 by > 2 seed std": {
            "value": {"best": best["row"], "gain": gain, "2std": 2 * spread},
            "met": gain > 2 * spread,
        },
        "best KD recovers >= 50 % of the teacher-student gap": {"value": recovered, "met": recovered >= 0.5},
        "MCU face student <= 100 KB int8 weights": {
            "value": profiles["student"]["params"],
            "met": profiles["student"]["params"] <= MCU_WEIGHT_BUDGET,
        },
        "MCU face student <= 64 KB peak activations": {
            "value": profiles["student"]["peak_activation_bytes_int8"],
            "met": profiles["student"]["peak_activation_bytes_int8"] <= MCU_ACTIVATION_BUDGET,
        },
        "full run < 45 min": {"value": total_minutes, "met": total_minutes < 45},
    }
    return {
        "benchmark": "kd_detection",
        "plan": asdict(plan),
        "environment": environment(plan.workers),
        "profiles": profiles,
        "teacher": {"test": teacher_run.test, "seconds": teacher_seconds},
        "rows": list(rows.values()),
        "targets": targets,
        "total_minutes": total_minutes,
        "best_model": (best_model, best_meta["score_threshold"]),
    }


def photo_targets(photos: dict) -> dict:
    student = photos["best KD n"]
    found = all(p["best_iou"] >= 0.5 for p in student.values())
    clean = all(p["false_positives"] == 0 for p in student.values())
    return {"real photos: face found (IoU >= 0.5), no false positive": {"value": student, "met": found and clean}}


def write_report(report: dict, folder: Path, tag: str) -> None:
    report = {k: v for k, v in report.items() if k != "best_model"}
    (folder / f"{tag}.json").write_text(json.dumps(report, indent=2, default=str))
    p, t = report["profiles"], report["teacher"]["test"]
    lines = [
        "# Detection distillation on the built-in face set (seeds' YOLOv5x -> YOLOv5n layout)",
        "",
        f"Measured by `benchmarks/kd_detection.py{' --quick' if 'quick' in tag else ''}` in "
        f"{report['total_minutes']:.1f} min ({report['plan']['workers']} worker processes); "
        f"{report['plan']['size']}x{report['plan']['size']} grayscale, COCO evaluator (pycocotools); "
        "precision/recall at each model's operating threshold, chosen by best F1 on the validation images; "
        f"mean +- std over seeds {report['plan']['seeds']}; teacher threshold {t['score_threshold']:.2f}.",
        "",
        "| model | params | MACs | P | R | mAP@0.5 | mAP@0.5:0.95 | threshold | ms/img (CPU, batch 1) | FPS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| teacher m | {p['teacher']['params']:,} | {p['teacher']['macs']:,} | {t['precision']:.3f} | "
        f"{t['recall']:.3f} | {t['map50']:.3f} | {t['map']:.3f} | {t['score_threshold']:.2f} | "
        f"{p['teacher']['ms_per_image']:.2f} | {1000 / p['teacher']['ms_per_image']:.0f} |",
    ]
    for r in report["rows"]:
        cells = " | ".join(f"{r[k]['mean']:.3f} +- {r[k]['std']:.3f}" for k in ("precision", "recall", "map50", "map"))
        threshold = np.mean([m["score_threshold"] for m in r["metrics"]])
        lines.append(
            f"| {r['row']} | {p['student']['params']:,} | {p['student']['macs']:,} | {cells} | {threshold:.2f} | "
            f"{p['student']['ms_per_image']:.2f} | {1000 / p['student']['ms_per_image']:.0f} |"
        )
    lines += targets_table(report["targets"])
    lines += ["", "Detections on the real photos (white: the face; red: teacher m; green: best KD student):", ""]
    lines += [f"![{name}]({tag}_{name}.png)" for name in PHOTO_FACES]
    (folder / f"{tag}.md").write_text("\n".join(lines) + "\n")
    plot(report, folder / f"{tag}.png")


def plot(report: dict, path: Path) -> None:
    rows = report["rows"]
    bar_chart(
        [r["row"] for r in rows],
        [r["map"]["mean"] for r in rows],
        [r["map"]["std"] for r in rows],
        report["teacher"]["test"]["map"],
        "teacher m",
        "test mAP@0.5:0.95",
        "Face detection distillation: student n, mean +- std over seeds",
        path,
    )


if __name__ == "__main__":
    sys.exit(main())
