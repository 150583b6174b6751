"""Shared by the fleet tests: a tiny exported model, agents and the collector as real processes, a real sshd."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from edgekd.cli import main
from edgekd.fleet.mosquitto import free_port
from tests.conftest import require_executable

ROOT = Path(__file__).resolve().parents[1]


def export_tiny_classifier(folder: Path) -> Path:
    """A digits classifier trained for one epoch, exported to ONNX and int8 TFLite (with manifests)."""
    args = ["train", "--data", "digits", "--model", "thesis", "--epochs", "1", "--threads", "1", "--quiet"]
    assert main([*args, "--out", str(folder / "m")]) == 0
    formats = ["--formats", "onnx,tflite-int8"]
    assert main(["export", str(folder / "m" / "model.pt"), "--out", str(folder / "x"), *formats]) == 0
    return folder / "x"


def wait_for(condition, timeout: float, what: str, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def spawn(args: list, log: Path, env: dict | None = None) -> subprocess.Popen:
    """A real process (python -m ...), output to `log`, run outside the repo like an installed program."""
    environment = {**os.environ, **(env or {})}
    handle = open(log, "ab")
    return subprocess.Popen(
        [sys.executable, *map(str, args)], stdout=handle, stderr=subprocess.STDOUT, env=environment, cwd=log.parent
    )


def start_agent(
    bundle: Path, log: Path, device: str, broker_url: str, password: str, ca: str | None, spool: Path, *extra
) -> subprocess.Popen:
    args = [
        "-m",
        "device_agents.rpi.agent",
        "--bundle",
        bundle,
        "--device-id",
        device,
        "--broker",
        broker_url,
        "--spool",
        spool,
        *extra,
    ]
    env = {"EDGEKD_MQTT_PASSWORD": password, **({"EDGEKD_MQTT_CA": ca} if ca else {})}
    return spawn(args, log, env)


def start_collector(broker_url: str, password: str, ca: str | None, db: Path, stats: Path, log: Path):
    args = ["-m", "edgekd.cli", "collect", "--broker", broker_url, "--db", db, "--stats", stats]
    env = {"EDGEKD_MQTT_PASSWORD": password, **({"EDGEKD_MQTT_CA": ca} if ca else {})}
    process = spawn(args, log, env)
    wait_for(lambda: stats.is_file() or process.poll() is not None, 30, "the collector to start")
    assert process.poll() is None, log.read_text()
    return process


def read_stats(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def stop(process: subprocess.Popen, timeout: float = 20) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.wait(timeout=timeout)


def logged_report_ids(log: Path) -> set[str]:
    """Report ids an agent logged as spooled ('report <id>: ...')."""
    ids = set()
    for line in log.read_text(errors="replace").splitlines():
        if "edgekd.agent INFO report " in line:
            ids.add(line.split("edgekd.agent INFO report ", 1)[1].split(":", 1)[0])
    return ids


class SSHServer:
    """A real OpenSSH server on 127.0.0.1 with generated host and client keys, and the ssh config a user would
    write for it (an alias, a port, an identity)."""

    def __init__(self, folder: Path, alias: str = "edgekd-test-pi"):
        sshd = self._sshd()
        require_executable("ssh")
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.alias, self.port = folder, alias, free_port()
        for name in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", folder / name], check=True)
        (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
        (folder / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\n"
            f"AuthorizedKeysFile {folder / 'authorized_keys'}\nStrictModes no\nPermitRootLogin prohibit-password\n"
            f"PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nPidFile {folder / 'sshd.pid'}\n"
            "Subsystem sftp internal-sftp\n"
        )
        self.config = folder / "ssh_config"
        self.config.write_text(
            f"Host {alias}\n  HostName 127.0.0.1\n  Port {self.port}\n  User {os.environ.get('USER', 'root')}\n"
            f"  IdentityFile {folder / 'client_key'}\n  IdentitiesOnly yes\n  StrictHostKeyChecking accept-new\n"
            f"  UserKnownHostsFile {folder / 'known_hosts'}\n"
        )
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory sshd insists on
        self.log = folder / "sshd.log"
        with open(self.log, "ab") as handle:
            self.process = subprocess.Popen(
                [sshd, "-D", "-e", "-f", folder / "sshd_config"], stdout=handle, stderr=subprocess.STDOUT
            )
        wait_for(lambda: self._answers(), 10, "sshd to listen")

    @staticmethod
    def _sshd() -> str:
        for candidate in ("/usr/sbin/sshd", "/usr/local/sbin/sshd"):
            if os.path.exists(candidate):
                return candidate
        return require_executable("sshd")

    def _answers(self) -> bool:
        result = subprocess.run(
            ["ssh", "-F", self.config, "-o", "BatchMode=yes", self.alias, "true"], capture_output=True, timeout=10
        )
        return result.returncode == 0

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
