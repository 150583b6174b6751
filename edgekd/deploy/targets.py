"""`edgekd deploy --target rpi|local|esp32`: what differs per target is where commands run and which Python runs
the agent. rpi: over SSH, into a venv on the device that gets edgekd's torch-free core from a wheel built here.
local: this machine and this interpreter (the same agent as a local process). esp32: edgekd.mcu.deploy_esp32."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgekd.config import FleetConfig
from edgekd.deploy.bundle import build_bundle, read_bundle
from edgekd.deploy.runner import LocalRunner, SSHRunner
from edgekd.deploy.steps import Plan, run_plan
from edgekd.errors import ConfigError
from edgekd.fleet.broker import Broker

SOURCE_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class DeployOptions:
    target: str
    host: str | None = None
    models: list[Path] | None = None
    bundle: Path | None = None  # a bundle built before (deployed as is: the device checks it)
    broker: Broker | None = None
    device_id: str | None = None
    agent: dict | None = None  # agent settings stored in the bundle (source, interval, runs, ...)
    root: str | None = None
    ssh_config: Path | None = None
    python: str = "python3"  # on the device, to create the venv
    system_site_packages: bool = False  # Raspberry Pi OS: picamera2 and friends come from apt
    no_deps: bool = False  # the device already has the core dependencies (e.g. from apt or an image)
    wheel: Path | None = None
    dry_run: bool = False


def build_wheel(work: Path) -> Path:
    """edgekd's wheel (pure Python, with device_agents), built from a copy of the sources (no build/ in the repo)."""
    if not (SOURCE_ROOT / "pyproject.toml").is_file():
        raise ConfigError("deploy needs edgekd's source tree to build the device's wheel, or --wheel FILE")
    source = work / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("edgekd", "device_agents"):
        shutil.copytree(SOURCE_ROOT / package, source / package, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(SOURCE_ROOT / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", work / "wheel"]
    result = subprocess.run([*map(str, command), str(source)], capture_output=True, text=True)
    if result.returncode != 0:
        raise ConfigError(f"building edgekd's wheel failed: {result.stderr[-2000:]}")
    return next((work / "wheel").glob("edgekd-*.whl"))


def _bundle(options: DeployOptions, work: Path) -> Path:
    if options.bundle:
        read_bundle(options.bundle)  # a folder that is a bundle; its sha256 are the device's to check
        return options.bundle
    if not options.models:
        raise ConfigError("give --model FILE (an exported .onnx / .tflite with its manifest) or --bundle DIR")
    return build_bundle(options.models, work / "bundle", options.agent or {})


def _ca_copy(options: DeployOptions, work: Path) -> list[tuple[Path, str]]:
    if not (options.broker and options.broker.ca_file):
        return []
    folder = work / "ca"
    folder.mkdir()
    shutil.copy(options.broker.ca_file, folder / Path(options.broker.ca_file).name)
    return [(folder, "ca")]


def deploy(options: DeployOptions, say) -> str:
    """Run the target's plan; returns the bundle id now active on the device."""
    if options.target == "esp32":
        return _deploy_esp32(options)
    config = FleetConfig()
    with tempfile.TemporaryDirectory(prefix="edgekd-deploy-") as temporary:
        work = Path(temporary)
        bundle = _bundle(options, work)
        copies = _ca_copy(options, work)
        if options.target == "local":
            root = options.root or str(Path.home() / ".edgekd" / "device")
            plan = Plan(LocalRunner(), root, bundle, sys.executable, options.broker, options.device_id, copies=copies)
            return run_plan(plan, options.dry_run, say)
        if options.target != "rpi":
            raise ConfigError(f"--target {options.target}: choose rpi, local or esp32")
        if not options.host:
            raise ConfigError("--target rpi needs --host user@host (anything `ssh` accepts, ~/.ssh/config aliases too)")
        plan = Plan(
            SSHRunner(options.host, options.ssh_config),
            options.root or config.remote_root,
            bundle,
            "@ROOT@/venv/bin/python",
            options.broker,
            options.device_id,
            copies=copies,
        )
        wheel = options.wheel or (None if options.dry_run else build_wheel(work))
        if wheel:
            (work / "dist").mkdir()
            shutil.copy(wheel, work / "dist" / Path(wheel).name)
        plan.copies.append((work / "dist", "dist"))
        venv = f"{options.python} -m venv{' --system-site-packages' if options.system_site_packages else ''}"
        pip = "@ROOT@/venv/bin/python -m pip install -q"
        dependencies = "" if options.no_deps else f"{pip} @ROOT@/dist/edgekd-*.whl && "  # fetches only what is missing
        plan.prepare = [
            ("create the venv (once)", f"test -x @ROOT@/venv/bin/python || {venv} @ROOT@/venv"),
            (
                "install edgekd's torch-free core from the wheel",
                f"{dependencies}{pip} --no-deps --force-reinstall @ROOT@/dist/edgekd-*.whl",
            ),
        ]
        return run_plan(plan, options.dry_run, say)


def _deploy_esp32(options: DeployOptions):
    try:
        from edgekd.mcu import deploy_esp32
    except ImportError:
        raise ConfigError(
            "--target esp32 needs edgekd.mcu.deploy_esp32 (microcontroller support), which this install lacks"
        ) from None
    return deploy_esp32(models=options.models, port=options.host, dry_run=options.dry_run)
