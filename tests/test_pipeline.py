"""`edgekd pipeline --quick` end to end: every stage runs, the report is written, every figure in it comes from a
JSON file the run measured, and a rerun resumes from the cache instead of training again."""

import json
import re
from pathlib import Path

import pytest

from edgekd.cli import main
from tests.conftest import require_executable

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    require_executable("qemu-system-arm")  # the pipeline benchmarks the compiled model on the emulated Cortex-M4
    require_executable("arm-none-eabi-gcc")
    out = tmp_path_factory.mktemp("pipeline") / "run"
    assert main(["pipeline", "--quick", "--out", str(out)]) == 0
    return out


def test_every_stage_ran_and_the_report_is_written(run_dir):
    run = json.loads((run_dir / "run.json").read_text())
    expected = ["teacher", "baseline", "student", "prune", "export-teacher", "export-baseline", "export-student"]
    assert list(run["stages"]) == expected + ["export-final", "bench", "compile", "bench-mcu"]
    assert not any(stage["cached"] for stage in run["stages"].values())
    report = run_dir / "report"
    for name in ("report.html", "report.md", "pareto.png", "curves.png", "photo_astronaut.png"):
        assert (report / name).stat().st_size > 1000, name
    rows = json.loads((report / "report.json").read_text())["rows"]
    assert {(r["model"], r["format"]) for r in rows} >= {
        ("teacher", "onnx"),
        ("student (no KD)", "onnx"),
        ("KD student", "onnx"),
        ("KD student, pruned", "tflite-int8"),
    }
    assert all(r["status"] == "ok" for r in rows)


def test_every_figure_is_traced_to_a_measured_json(run_dir):
    record = json.loads((run_dir / "report" / "report.json").read_text())
    for row in record["rows"]:
        measured = json.loads(Path(row["source"]).read_text())
        assert measured["schema"] == "edgekd-report/1"
        assert row["p50_ms"] == measured["latency"]["p50_ms"]
        assert row["size_bytes"] == measured["model"]["size_bytes"]
        assert row["map50"] == measured["accuracy"]["metrics"]["map50"]
    pruned = next(r for r in record["rows"] if r["stage"] == "prune")
    prune_summary = json.loads((run_dir / "stages" / "prune" / "summary.json").read_text())
    assert pruned["macs"] == prune_summary["after"]["macs"] < prune_summary["before"]["macs"]
    assert all(Path(source).is_file() for source in record["sources"])
    markdown = (run_dir / "report" / "report.md").read_text()
    for row in record["rows"]:
        assert f"{row['p50_ms']:.3f}" in markdown and f"{row['map50']:.3f}" in markdown
    run = json.loads((run_dir / "run.json").read_text())
    device = json.loads(Path(run["stages"]["bench-mcu"]["result"]["reports"][0]).read_text())
    assert device["device"]["kind"] == "mcu" and device["model"]["format"] == "c"
    assert f"{device['mcu']['per_inference']:,.0f}" in markdown
    conv = [layer for layer in device["mcu"]["layers"] if layer["macs"]]  # conv, depthwise, fully connected
    conv_per_mac = sum(layer["instr"] for layer in conv) / sum(layer["macs"] for layer in conv)
    assert f"; {conv_per_mac:.2f}; " in markdown
    assert f"{device['accuracy']['metrics']['map50']:.3f}" in markdown


def test_html_report_is_self_contained(run_dir):
    html = (run_dir / "report" / "report.html").read_text()
    assert "Microcontroller build" in html and "instructions per inference" in html
    sources = re.findall(r'src="([^"]+)"', html)
    assert len(sources) >= 3 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "KD student, pruned" in html and "mAP@0.5:0.95" in html


def test_a_rerun_resumes_from_the_cache(run_dir):
    assert main(["pipeline", "--quick", "--out", str(run_dir)]) == 0
    run = json.loads((run_dir / "run.json").read_text())
    assert all(stage["cached"] for stage in run["stages"].values())
    assert run["seconds"] < 30


def test_fleet_reports_of_the_run_models_join_the_report(run_dir, tmp_path):
    """Devices' stored reports of this run's models (here one made from the local bench report, as a Pi would
    publish it) are copied into the run and plotted per device; no other stage runs again."""
    from edgekd.fleet.store import open_store

    run = json.loads((run_dir / "run.json").read_text())
    local = [json.loads(Path(p).read_text()) for p in run["stages"]["bench"]["result"]["reports"]]
    store_path = tmp_path / "fleet.db"
    store = open_store(store_path)
    for i, device in enumerate(["pi-kitchen", "pi-door"]):
        report = json.loads(json.dumps(local[-1]))
        report["report_id"] = f"00000000-0000-4000-8000-00000000000{i}"
        report["device"] = {"id": device, "kind": "rpi"}
        store.add_reports([report])
    store.close()
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"bench:\n  fleet_db: {store_path}\n")
    assert main(["pipeline", str(recipe), "--quick", "--out", str(run_dir)]) == 0
    run = json.loads((run_dir / "run.json").read_text())
    ran = [name for name, stage in run["stages"].items() if not stage["cached"]]
    assert ran == ["fleet"] and run["stages"]["fleet"]["result"]["reports"] == 2
    assert (run_dir / "report" / "fleet.png").stat().st_size > 1000
    assert "Latency per device" in (run_dir / "report" / "report.md").read_text()
