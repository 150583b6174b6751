"""The device side of `edgekd deploy`, run on the device through SSH (or locally):

    python -m device_agents.rpi.service activate ROOT BUNDLE_ID   verify sha256, health check, swap `current`
    python -m device_agents.rpi.service start ROOT                (re)start the agent: systemd, else supervised
    python -m device_agents.rpi.service alive ROOT [--seconds S]  is the agent still running after S seconds?
    python -m device_agents.rpi.service rollback ROOT             `current` back to `previous`
    python -m device_agents.rpi.service stop ROOT

ROOT holds venv/, bundles/<id>/, the symlinks current and previous, agent.env (0600), spool/ and, without systemd,
agent.pid and agent.log. A symlink replaced by rename is swapped atomically: the agent never sees half a bundle.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from device_agents.rpi.measure import health_check
from edgekd.deploy.bundle import UNIT_FILE, verify_bundle
from edgekd.errors import EdgeKDError

UNIT_PATH = Path("/etc/systemd/system") / UNIT_FILE


def systemd_running() -> bool:
    """What sd_booted() checks: systemd is PID 1 (a container or this sandbox may have systemctl without it)."""
    return shutil.which("systemctl") is not None and Path("/run/systemd/system").is_dir()


def _swap(link: Path, target: str) -> None:
    temporary = link.with_name(link.name + ".new")
    temporary.unlink(missing_ok=True)
    os.symlink(target, temporary)
    os.replace(temporary, link)


def activate(root: Path, bundle: str) -> None:
    folder = root / "bundles" / bundle
    try:
        described = verify_bundle(folder)
        problem = health_check(folder / "models" / described["model"])
        if problem:
            raise EdgeKDError(f"health check failed: {problem}")
    except EdgeKDError:
        shutil.rmtree(folder, ignore_errors=True)  # never leave a refused bundle where `current` could point
        raise
    current = root / "current"
    if current.is_symlink() and os.readlink(current) != f"bundles/{bundle}":
        _swap(root / "previous", os.readlink(current))
    _swap(current, f"bundles/{bundle}")
    print(f"activated {bundle}: {described['model']} passed its sha256 and health checks")


def rollback(root: Path) -> None:
    previous = root / "previous"
    if not previous.is_symlink():
        raise EdgeKDError(f"{root}: no previous bundle to roll back to")
    failed = os.readlink(root / "current")
    _swap(root / "current", os.readlink(previous))
    shutil.rmtree(root / failed, ignore_errors=True)
    print(f"rolled back to {os.readlink(previous)}")


def _unit(root: Path) -> str:
    from importlib import resources

    text = resources.files("device_agents.rpi").joinpath(UNIT_FILE).read_text()
    return text.replace("@USER@", getpass.getuser()).replace("@ROOT@", str(root)).replace("@PYTHON@", sys.executable)


def _run(command: list[str]) -> None:
    if os.geteuid() != 0:
        command = ["sudo", "-n", *command]
    subprocess.run(command, check=True)


def _pid(root: Path) -> int | None:
    try:
        pid = int((root / "agent.pid").read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def stop(root: Path) -> None:
    if systemd_running():
        _run(["systemctl", "stop", UNIT_FILE])
        return
    pid = _pid(root)
    if pid:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if _pid(root) is None:
                break
            time.sleep(0.1)


def start(root: Path) -> None:
    (root / UNIT_FILE).write_text(_unit(root))  # the rendered unit, for the record and for manual installs
    if systemd_running():
        _run(["install", "-m", "0644", str(root / UNIT_FILE), str(UNIT_PATH)])
        _run(["systemctl", "daemon-reload"])
        _run(["systemctl", "enable", UNIT_FILE])
        _run(["systemctl", "restart", UNIT_FILE])
        print(f"systemd: {UNIT_FILE} installed, enabled and (re)started")
        return
    stop(root)
    with open(root / "agent.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "device_agents.rpi.supervise", str(root)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives the SSH session that started it
        )
    (root / "agent.pid").write_text(str(process.pid))
    print(
        f"systemd is not running here: started the agent as a supervised background process "
        f"(pid {process.pid}, pidfile {root / 'agent.pid'}, log {root / 'agent.log'}); {UNIT_FILE} is in {root}"
    )


def _supervised_up(root: Path) -> bool:
    state = (root / "supervise.state").read_text().split() if (root / "supervise.state").is_file() else []
    return _pid(root) is not None and state == ["running", "0"]  # up, and never restarted


def alive(root: Path, seconds: float, start_timeout: float = 120.0) -> None:
    """The agent started (it wrote agent.ready: bundle verified, broker not refusing) and is still up, never
    restarted, `seconds` later."""
    if systemd_running():
        time.sleep(seconds)
        running = subprocess.run(["systemctl", "is-active", "--quiet", UNIT_FILE]).returncode == 0
    else:
        deadline = time.monotonic() + start_timeout
        while _supervised_up(root) and not (root / "agent.ready").is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(seconds if (root / "agent.ready").is_file() else 0)
        running = _supervised_up(root) and (root / "agent.ready").is_file()
    if not running:
        raise EdgeKDError(f"the agent did not start or stay up (see {root / 'agent.log'})")
    print("agent running")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m device_agents.rpi.service")
    p.add_argument("action", choices=["activate", "start", "stop", "alive", "rollback"])
    p.add_argument("root", type=Path)
    p.add_argument("bundle", nargs="?")
    p.add_argument("--seconds", type=float, default=3.0)
    args = p.parse_args(argv)
    root = args.root.expanduser().resolve()
    try:
        if args.action == "activate":
            activate(root, args.bundle)
        elif args.action == "alive":
            alive(root, args.seconds)
        else:
            {"start": start, "stop": stop, "rollback": rollback}[args.action](root)
    except (EdgeKDError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
