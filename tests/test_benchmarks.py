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


def test_mcu_quick_is_bit_exact_and_reads_the_target_over_conv_layers(tmp_path):
    from tests.conftest import require_executable

    require_executable("arm-none-eabi-gcc")
    require_executable("qemu-system-arm")
    run_quick("mcu.py", tmp_path, timeout=900)
    report = json.loads((tmp_path / "results" / "mcu_quick.json").read_text())
    assert [m["name"] for m in report["models"]] == ["mcu-face", "mcu-classifier"]
    assert all(m["bit_exact"] and m["ram_vs_tflm"] < 1 for m in report["models"])
    assert all(layer["instr_per_mac"] > 0 for m in report["models"] for layer in m["conv_layers"])
    aggregate = "<= 2 instructions per MAC on conv layers (all conv layers of a model, worst model)"
    assert report["targets"][aggregate]["value"] == max(m["conv_instructions_per_mac"] for m in report["models"])
    assert "the worst is mcu-" in report["conv_layers_within_target"]
    assert "## mcu-classifier: conv layers" in (tmp_path / "results" / "mcu_quick.md").read_text()
