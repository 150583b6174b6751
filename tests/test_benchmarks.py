"""The benchmark scripts run end to end (in their smallest mode) and write the files they promise."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_quick(script: str, tmp_path: Path, *extra: str, timeout: float) -> None:
    """Runs benchmarks/SCRIPT --quick with its results and work folders under tmp_path; fails with its output."""
    command = [sys.executable, str(ROOT / "benchmarks" / script), "--quick", *extra]
    command += ["--results", str(tmp_path / "results"), "--work", str(tmp_path / "work")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_kd_classification_quick_on_digits(tmp_path):
    run_quick("kd_classification.py", tmp_path, "--data", "digits", timeout=900)
    report = json.loads((tmp_path / "results" / "kd_classification_quick.json").read_text())
    rows = {r["row"]: r for r in report["rows"]}
    assert "student, no KD" in rows and "Born-again (self, KD from gen 0)" in rows
    assert all(len(r["values"]) == 2 and 0 <= r["mean"] <= 1 for r in rows.values())
    assert set(report["targets"]) >= {"teacher >= 92 % top-1", "full run < 45 min"}
    markdown = (tmp_path / "results" / "kd_classification_quick.md").read_text()
    assert "| teacher (resnet) |" in markdown and "## Targets" in markdown
    assert (tmp_path / "results" / "kd_classification_quick.png").stat().st_size > 10_000


def test_fleet_load_quick_loses_nothing(tmp_path):
    from tests.conftest import require_executable

    require_executable("mosquitto")
    run_quick("fleet_load.py", tmp_path, timeout=300)
    report = json.loads((tmp_path / "results" / "fleet_load_quick.json").read_text())
    row = report["rows"][0]
    assert row["total"] == 200 and row["stored"] == 200 and row["lost"] == 0 and row["duplicated"] == 0
    assert row["stored_per_s"] > 0 and 0 < row["latency_p50_ms"] <= row["latency_p95_ms"]
    assert "| plain TCP | 20 x 10 |" in (tmp_path / "results" / "fleet_load_quick.md").read_text()
