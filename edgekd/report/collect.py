"""What a pipeline run measured, gathered from its JSON files into rows, curves and samples for the report.

Nothing here computes a metric: every figure is read from a file the run wrote (bench reports, training and
pruning summaries, export summaries), and each row keeps the path of the file it came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from edgekd.errors import ConfigError
from edgekd.pipeline.run import RUN_FILE
from edgekd.pipeline.stages import MODEL_ROWS
from edgekd.runtime.manifest import sha256_file


@dataclass
class ReportData:
    run_dir: Path
    run: dict
    rows: list[dict] = field(default_factory=list)  # one per (model, format) benchmarked
    curves: dict[str, list[dict]] = field(default_factory=dict)  # stage -> training history
    final_files: dict[str, str] = field(default_factory=dict)  # format -> the final model's file
    fleet_rows: list[dict] = field(default_factory=list)  # stored device reports of this run's models
    mcu: dict | None = None  # the compiled C model: sizes from the compiler, counts from the emulated device
    sources: list[str] = field(default_factory=list)  # every JSON file a figure came from


def _read(path: str | Path, sources: list[str]) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the run's record: {error}") from error
    sources.append(str(path))
    return data


def _profile(stage: str, summary: dict) -> dict:
    """params and MACs of the model a stage wrote (training summaries hold `model`, pruning ones `after`)."""
    if stage == "prune":
        return {"params": summary["after"]["params"], "macs": summary["after"]["macs"]}
    return {"params": summary["model"]["params"], "macs": summary["model"]["macs"]}


def _history(stage: str, summary: dict) -> list[dict]:
    if stage == "prune":
        return [epoch for step in summary.get("steps", []) for epoch in step.get("history") or []]
    return summary.get("history", [])


def collect(run_dir: str | Path) -> ReportData:
    run_dir = Path(run_dir)
    if not (run_dir / RUN_FILE).is_file():
        raise ConfigError(f"{run_dir}: no {RUN_FILE}: not a finished `edgekd pipeline` run folder")
    data = ReportData(run_dir, {})
    data.run = _read(run_dir / RUN_FILE, data.sources)
    stages = data.run["stages"]
    labels = dict(MODEL_ROWS)
    by_sha = {}  # sha256 of an exported file -> (model stage, format): every stage names its file model.*
    final_source = "prune" if "prune" in stages else "student"
    for name, stage in stages.items():
        if name.startswith("export-"):
            source = final_source if name == "export-final" else name.removeprefix("export-")
            for fmt, path in stage["result"]["files"].items():
                by_sha[sha256_file(path)] = (source, fmt)
                if name == "export-final":
                    data.final_files[fmt] = path
    profiles = {}
    for stage_name, _ in MODEL_ROWS:
        summary_path = stages.get(stage_name, {}).get("result", {}).get("summary")
        if summary_path:
            summary = _read(summary_path, data.sources)
            profiles[stage_name] = _profile(stage_name, summary)
            data.curves[stage_name] = _history(stage_name, summary)
    for report_path in stages.get("bench", {}).get("result", {}).get("reports", []):
        report = _read(report_path, data.sources)
        if report["model"].get("sha256") not in by_sha:
            continue
        stage_name, fmt = by_sha[report["model"]["sha256"]]
        data.rows.append(_row(labels[stage_name], stage_name, fmt, report, profiles.get(stage_name, {}), report_path))
    data.mcu = _mcu(stages, data.sources)
    fleet_file = stages.get("fleet", {}).get("result", {}).get("reports_file")
    if fleet_file:
        data.fleet_rows = [_fleet_row(report) for report in _read(fleet_file, data.sources)]
    order = {name: i for i, (name, _) in enumerate(MODEL_ROWS)}
    data.rows.sort(key=lambda r: (order[r["stage"]], r["format"]))
    return data


def _row(label: str, stage: str, fmt: str, report: dict, profile: dict, source: str) -> dict:
    row = {"model": label, "stage": stage, "format": fmt, "status": report["status"], "source": source}
    row.update(params=profile.get("params"), macs=profile.get("macs"))
    if report["status"] != "ok":
        return row | {"error": report.get("error")}
    latency, metrics = report["latency"], (report.get("accuracy") or {}).get("metrics", {})
    return row | {
        "size_bytes": report["model"]["size_bytes"],
        "p50_ms": latency["p50_ms"],
        "p95_ms": latency["p95_ms"],
        "fps": latency["fps"],
        "runtime": f"{report['runtime']['name']} {report['runtime']['version']}",
        "device": report["device"]["id"],
        **{k: metrics.get(k) for k in ("precision", "recall", "map50", "map", "top1")},
    }


def _mcu(stages: dict, sources: list[str]) -> dict | None:
    """Flash, RAM, instructions and on-device accuracy of the compiled model, when the run compiled one."""
    if "compile" not in stages:
        return None
    compiled = _read(stages["compile"]["result"]["description"], sources)
    mcu = {"arena_bytes": compiled["arena_bytes"], "weight_bytes": compiled["weight_bytes"], "macs": compiled["macs"]}
    for path in stages.get("bench-mcu", {}).get("result", {}).get("reports", []):
        report = _read(path, sources)
        device = report["mcu"]
        conv = [layer for layer in device["layers"] if layer.get("macs") and f"{device['unit']}_per_mac" in layer]
        mcu |= {
            "source": path,
            "device": report["device"]["id"],
            "unit": device["unit"],
            "per_inference": device["per_inference"],
            "per_mac": device["per_inference"] / compiled["macs"] if compiled["macs"] else None,
            "conv_per_mac": device.get("conv_per_mac"),
            "conv_per_mac_max": max((layer[f"{device['unit']}_per_mac"] for layer in conv), default=None),
            "flash_bytes": device["sizes"].get("flash"),
            "ram_bytes": device["arena_bytes"] + device["stack_bytes"],
            "metrics": (report.get("accuracy") or {}).get("metrics", {}),
        }
    return mcu


def _fleet_row(report: dict) -> dict:
    latency = report.get("latency") or {}
    return {"device_id": report["device"]["id"], "model": report["model"]["file"], "p50_ms": latency.get("p50_ms")}
