"""`edgekd report RUN_DIR`: one self-contained HTML file (figures inlined, no server, no network) and a markdown
twin, with the seeds' comparison table: teacher vs student vs KD student vs pruned vs int8."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from edgekd.report import plots
from edgekd.report.collect import ReportData, collect

MCU_TITLE = "Microcontroller build: the final int8 model compiled to C"
QUICK_NOTE = " (--quick: a smoke run, not a result)"
COLUMNS = (
    ("model", "model", str),
    ("format", "format", str),
    ("params", "params", lambda v: f"{v:,}"),
    ("macs", "MACs", lambda v: f"{v:,}"),
    ("size_bytes", "size KB", lambda v: f"{v / 1024:.1f}"),
    ("p50_ms", "p50 ms", lambda v: f"{v:.3f}"),
    ("p95_ms", "p95 ms", lambda v: f"{v:.3f}"),
    ("fps", "FPS", lambda v: f"{v:.0f}"),
    ("precision", "precision", lambda v: f"{v:.3f}"),
    ("recall", "recall", lambda v: f"{v:.3f}"),
    ("map50", "mAP@0.5", lambda v: f"{v:.3f}"),
    ("map", "mAP@0.5:0.95", lambda v: f"{v:.3f}"),
)


def _cells(row: dict) -> list[str]:
    if row["status"] != "ok":
        return [row["model"], row["format"]] + ["-"] * (len(COLUMNS) - 3) + [f"error: {row.get('error')}"]
    return [fmt(row[key]) if row.get(key) is not None else "-" for key, _, fmt in COLUMNS]


def _stage_lines(data: ReportData) -> list[list[str]]:
    return [[name, "cached" if s["cached"] else "ran", f"{s['seconds']:.0f}"] for name, s in data.run["stages"].items()]


def _two_places(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"  # a report from before the figure existed


def _mcu_lines(data: ReportData) -> list[list[str]]:
    """(label, value) pairs for the compiled model; device figures only when it ran on the emulated MCU."""
    mcu = data.mcu
    lines = [
        ["weights (flash, const arrays)", f"{mcu['weight_bytes'] / 1024:.1f} KB"],
        ["activation arena (static plan)", f"{mcu['arena_bytes'] / 1024:.1f} KB"],
        ["MACs per inference", f"{mcu['macs']:,}"],
    ]
    if "source" in mcu:
        unit = "instructions" if mcu["unit"] == "instr" else mcu["unit"]
        lines += [
            ["device", f"{mcu['device']} (QEMU mps2-an386, -icount: counts, not cycles)"],
            ["firmware flash (text + data)", f"{mcu['flash_bytes'] / 1024:.1f} KB"],
            ["RAM (arena + stack high-water)", f"{mcu['ram_bytes'] / 1024:.1f} KB"],
            [f"{unit} per inference", f"{mcu['per_inference']:,.0f}"],
            [
                f"{unit} per MAC (whole model; conv layers; worst conv layer)",
                "; ".join(_two_places(mcu[k]) for k in ("per_mac", "conv_per_mac", "conv_per_mac_max")),
            ],
        ]
        lines += [[f"{name} on the device", f"{value:.3f}"] for name, value in mcu["metrics"].items()]
    return lines


def _markdown(data: ReportData, figures: dict[str, Path], photos: list[dict]) -> str:
    recipe = data.run["recipe"]
    lines = [
        f"# edgekd pipeline report: {recipe['name']}",
        "",
        f"Data `{recipe['data']}`; teacher `{recipe['teacher']['model']}`, student `{recipe['student']['model']}` "
        f"distilled by `{recipe['student']['method']}`, pruning `{recipe['prune']['kind']}`. "
        f"Run time {data.run['seconds'] / 60:.1f} min{QUICK_NOTE if data.run['quick'] else ''}.",
        "Every figure below was measured by this run; the JSON files are listed at the end. Latency: batch 1, "
        f"{recipe['bench']['threads']} thread(s), median of {recipe['bench']['runs']} runs on this machine.",
        "",
        "## Teacher vs student vs KD student vs pruned vs int8",
        "",
        "| " + " | ".join(title for _, title, _ in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in data.rows]
    if data.mcu:
        lines += ["", f"## {MCU_TITLE}", "", "| | |", "|---|---:|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in _mcu_lines(data)]
    for name, path in figures.items():
        lines += ["", f"## {name}", "", f"![{name}]({path.name})"]
    if photos:
        lines += ["", "## Detections on real photos (never in any training set)", ""]
        for sample in photos:
            lines.append(f"- {sample['photo']}: {sample['model']} ({sample['format']}) scores {sample['scores']}")
            lines.append(f"  ![{sample['photo']}]({sample['image']})")
    lines += ["", "## Stages", "", "| stage | | seconds |", "|---|---|---:|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in _stage_lines(data)]
    lines += ["", "## Sources", ""] + [f"- `{source}`" for source in dict.fromkeys(data.sources)]
    return "\n".join(lines) + "\n"


def _html_row(cells: list[str]) -> str:
    return "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"


def _img(path: Path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{encoded}">'


STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}tr:nth-child(even){background:#f6f6f6}
img{max-width:100%}.photos img{max-width:32%;margin-right:1%}code{background:#f0f0f0}"""


def _html(data: ReportData, figures: dict[str, Path], photos: list[dict], markdown_path: Path) -> str:
    recipe = data.run["recipe"]
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title, _ in COLUMNS)
    body = "".join(_html_row(_cells(r)) for r in data.rows)
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>edgekd report: {html.escape(recipe['name'])}"
        f"</title><style>{STYLE}</style></head><body>",
        f"<h1>edgekd pipeline report: {html.escape(recipe['name'])}</h1>",
        f"<p>Data <code>{html.escape(recipe['data'])}</code>, run time {data.run['seconds'] / 60:.1f} min"
        f"{QUICK_NOTE if data.run['quick'] else ''}. Every figure was measured by "
        f"this run (sources at the end; markdown twin: {html.escape(markdown_path.name)}).</p>",
        "<h2>Teacher vs student vs KD student vs pruned vs int8</h2>",
        f"<table><tr>{head}</tr>{body}</table>",
    ]
    if data.mcu:
        rows = "".join(_html_row(cells) for cells in _mcu_lines(data))
        parts.append(f"<h2>{MCU_TITLE}</h2><table>{rows}</table>")
    for name, path in figures.items():
        parts += [f"<h2>{html.escape(name)}</h2>", _img(path)]
    if photos:
        parts.append("<h2>Detections on real photos (never in any training set)</h2><div class='photos'>")
        parts += [_img(data.run_dir / "report" / s["image"]) for s in photos]
        parts.append("</div>")
    stages = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>" for cells in _stage_lines(data)
    )
    parts.append(f"<h2>Stages</h2><table><tr><th>stage</th><th></th><th>seconds</th></tr>{stages}</table>")
    sources = "".join(f"<li><code>{html.escape(s)}</code></li>" for s in dict.fromkeys(data.sources))
    parts.append(f"<h2>Sources</h2><ul>{sources}</ul></body></html>")
    return "\n".join(parts)


def write_report(run_dir: str | Path) -> dict:
    """report/report.html, report/report.md, their PNGs and report/report.json (the rows) inside `run_dir`."""
    data = collect(run_dir)
    folder = data.run_dir / "report"
    folder.mkdir(exist_ok=True)
    figures = {
        title: path
        for title, path in (
            ("Accuracy vs latency and size", plots.pareto(data, folder / "pareto.png")),
            ("Training and distillation curves", plots.curves(data, folder / "curves.png")),
            ("Latency per device (fleet)", plots.fleet_latency(data, folder / "fleet.png")),
        )
        if path is not None
    }
    photos = plots.detections_on_photos(data, folder)
    markdown_path = folder / "report.md"
    markdown_path.write_text(_markdown(data, figures, photos))
    html_path = folder / "report.html"
    html_path.write_text(_html(data, figures, photos, markdown_path))
    record = {"rows": data.rows, "photos": photos, "sources": list(dict.fromkeys(data.sources))}
    (folder / "report.json").write_text(json.dumps(record, indent=2))
    return {"html": str(html_path), "markdown": str(markdown_path), "rows": len(data.rows), "photos": len(photos)}
