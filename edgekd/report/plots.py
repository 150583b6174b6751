"""The report's figures as PNG files: accuracy against latency and size (Pareto), training curves, detections on
the real face photos. matplotlib with the Agg backend: no display needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekd.report.collect import ReportData

MARKERS = {"onnx": "o", "onnx-int8": "s", "tflite": "^", "tflite-int8": "D", "c": "*"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path, title: str) -> Path:
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both axes (lower x, higher y), sorted by x."""
    front, best = [], -np.inf
    for x, y in sorted(points):
        if y > best:
            front.append((x, y))
            best = y
    return front


def pareto(data: ReportData, path: Path) -> Path | None:
    rows = [r for r in data.rows if r["status"] == "ok" and r.get("map50") is not None]
    if not rows:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    models = list(dict.fromkeys(row["model"] for row in rows))
    colours = {model: f"C{i}" for i, model in enumerate(models)}
    for ax, key, label in ((axes[0], "p50_ms", "p50 latency (ms, one CPU thread)"), (axes[1], "size_kb", "file KB")):
        points = []
        for row in rows:
            x = row["size_bytes"] / 1024 if key == "size_kb" else row[key]
            points.append((x, row["map50"]))
            ax.scatter(x, row["map50"], marker=MARKERS.get(row["format"], "o"), s=50, color=colours[row["model"]])
        ax.plot(*zip(*_pareto_front(points), strict=True), "k--", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("mAP@0.5 (test)")
        ax.grid(alpha=0.3)
    # Colour says which model, marker which file format; the dashed line is the Pareto front.
    handles = [plt.Line2D([], [], ls="", marker="o", color=colours[m], label=m) for m in models]
    formats = dict.fromkeys(row["format"] for row in rows)
    handles += [plt.Line2D([], [], ls="", marker=MARKERS.get(f, "o"), color="gray", label=f) for f in formats]
    handles.append(plt.Line2D([], [], ls="--", color="k", label="Pareto front"))
    axes[1].legend(handles=handles, fontsize=7, loc="best")
    return _save(plt, fig, path, "accuracy against latency and size")


def curves(data: ReportData, path: Path) -> Path | None:
    histories = {stage: h for stage, h in data.curves.items() if h}
    if not histories:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for stage, history in histories.items():
        epochs = np.arange(1, len(history) + 1)
        axes[0].plot(epochs, [h.get("loss", np.nan) for h in history], label=stage)
        if any("val_map50" in h for h in history):
            axes[1].plot(epochs, [h.get("val_map50", np.nan) for h in history], label=stage)
    axes[0].set(xlabel="epoch (pruning: fine-tuning epochs of every step)", ylabel="training loss", yscale="log")
    axes[1].set(xlabel="epoch", ylabel="validation mAP@0.5")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(plt, fig, path, "training and distillation")


def fleet_latency(data: ReportData, path: Path) -> Path | None:
    """Distribution of p50 latency per device, from the reports devices stored (`edgekd collect`)."""
    if not any(row["p50_ms"] is not None for row in data.fleet_rows):
        return None
    from edgekd.fleet.plots import latency_per_device

    return latency_per_device(data.fleet_rows, path, "this run's models on the fleet's devices")


def detections_on_photos(data: ReportData, folder: Path) -> list[dict]:
    """The final model (int8 when exported) on the real face photos no training set contains."""
    import cv2

    from edgekd.data.detection.builtin import real_face_photos
    from edgekd.demo.overlay import draw_detections
    from edgekd.runtime.engine import Engine

    preferred = [f for f in ("tflite-int8", "onnx-int8", "tflite", "onnx") if f in data.final_files]
    if not preferred:
        return []
    model_file = data.final_files[preferred[0]]
    engine = Engine(model_file)
    samples = []
    for name, image in real_face_photos():
        found = engine.predict(image)
        canvas = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        draw_detections(canvas, found)  # as the live demo draws them
        out = folder / f"photo_{name}.png"
        cv2.imwrite(str(out), canvas)
        samples.append(
            {
                "photo": name,
                "image": out.name,
                "model": Path(model_file).name,
                "format": preferred[0],
                "scores": [round(float(s), 3) for s in found.scores],
            }
        )
    return samples
