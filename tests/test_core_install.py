"""A core install (pyproject's `dependencies` only, no torch) imports the runtime and bench and runs `edgekd bench`.

The venv is plain (no system site-packages, where torch lives here) and is cached in the temp folder under a hash
of the core dependencies and the Python version, so only the first run pays for pip; edgekd itself is reinstalled
from a copy of its sources every time (--no-deps). Runs in CI (CI=true): there a failed pip install fails the test,
elsewhere it skips.
"""

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from edgekd.bench.report import validate_report
from edgekd.cli import main
from edgekd.runtime.manifest import read_manifest
from tests.conftest import IN_CI
from tests.helpers import write_idx_dataset

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")  # Python >= 3.11, as on CI


def _run(args: list, **kwargs) -> subprocess.CompletedProcess:
    # Outside the repo and without PYTHONPATH: the venv must import its installed edgekd, not the source tree.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    kwargs.setdefault("cwd", tempfile.gettempdir())
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, **kwargs)


def core_venv() -> Path:
    """A venv holding the core dependencies (built once per dependency set, under a lock)."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    key = hashlib.sha256(json.dumps([sys.version, dependencies]).encode()).hexdigest()[:16]
    venv = Path(tempfile.gettempdir()) / f"edgekd-core-venv-{key}"
    with open(f"{venv}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / "ready").is_file():
            shutil.rmtree(venv, ignore_errors=True)
            _run([sys.executable, "-m", "venv", venv], check=True)
            # setuptools: to build edgekd below without fetching a build environment each time.
            result = _run([venv / "bin" / "python", "-m", "pip", "install", "-q", "setuptools>=68", *dependencies])
            if result.returncode != 0:
                message = f"pip could not install the core dependencies: {result.stderr[-2000:]}"
                pytest.fail(message) if IN_CI else pytest.skip(message)
            (venv / "ready").write_text("\n".join(dependencies))
    return venv


def install_edgekd(venv: Path, work: Path) -> None:
    """edgekd alone (--no-deps) from a copy of its sources: building in the repo would litter it with build/."""
    source = work / "source"
    for package in ("edgekd", "device_agents"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip = [venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    _run([*pip, "--force-reinstall", source], check=True)


@pytest.mark.slow
def test_core_install_runs_bench_without_torch(tmp_path):
    # A classifier trained on an IDX folder: a dataset format the core install reads without scikit-learn.
    data = write_idx_dataset(tmp_path / "idx")
    args = ["train", "--data", str(data), "--model", "thesis", "--epochs", "1", "--threads", "1", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "m")]) == 0
    formats = ["--formats", "onnx,tflite-int8", "--data", str(data)]
    assert main(["export", str(tmp_path / "m" / "model.pt"), "--out", str(tmp_path / "x"), *formats]) == 0

    venv = core_venv()
    install_edgekd(venv, tmp_path)
    python = venv / "bin" / "python"
    assert _run([python, "-c", "import torch"]).returncode != 0, "torch must not be importable in the core venv"
    imports = "import edgekd.runtime.engine, edgekd.bench, edgekd.bench.bench, edgekd.bench.detection_metrics as m"
    checked = _run([python, "-c", f"{imports}; print(m.__file__)"])
    assert checked.returncode == 0, checked.stderr
    assert str(venv) in checked.stdout  # the installed copy, not the source tree
    fleet = "import edgekd.fleet.collector, edgekd.deploy.targets, device_agents.rpi.agent"
    assert _run([python, "-c", fleet]).returncode == 0

    models = [tmp_path / "x" / "model.onnx", tmp_path / "x" / "model.int8.tflite"]
    reports = tmp_path / "reports"
    bench = [venv / "bin" / "edgekd", "bench", *models, "--runs", "5", "--data", data, "--json-dir", reports]
    result = _run(bench, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "model.int8.tflite" in result.stdout and "top1" in result.stdout
    written = [validate_report(json.loads(p.read_text())) for p in reports.glob("*.json")]
    assert sorted(r["model"]["file"] for r in written) == ["model.int8.tflite", "model.onnx"]
    # The Pi agent runs from the core install: the bundle passes its sha256 and health checks.
    from edgekd.deploy.bundle import build_bundle

    bundle = build_bundle([tmp_path / "x" / "model.int8.tflite"], tmp_path / "bundle", {})
    health = _run([venv / "bin" / "edgekd-agent", "--bundle", bundle, "--health-check"])
    assert health.returncode == 0 and "model.int8.tflite loads, runs" in health.stdout, health.stderr
    for report in written:
        exported = read_manifest(tmp_path / "x" / report["model"]["file"])["metrics"]["test"]["top1"]
        assert report["accuracy"]["metrics"]["top1"] == pytest.approx(exported, abs=1e-9)
