"""Running the device side of a deploy: a shell script and a folder copy, either here (`local`) or over SSH with
the user's own OpenSSH client, so ~/.ssh/config, keys and agents work as they do for `ssh`. `--ssh-config FILE`
becomes `ssh -F FILE`; EDGEKD_SSH_OPTIONS adds options (e.g. "-o Port=2222"). Secrets travel on stdin, never on
a command line (visible in `ps` on both ends)."""

from __future__ import annotations

import io
import os
import shlex
import subprocess
import tarfile
from pathlib import Path

from edgekd.errors import EdgeKDError

SSH_OPTIONS_ENV = "EDGEKD_SSH_OPTIONS"


class DeployError(EdgeKDError):
    """A deploy step failed on the device."""


def _tar(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(folder, arcname=".")
    return buffer.getvalue()


class LocalRunner:
    where = "this machine"

    def command(self, script: str) -> list[str]:
        return ["sh", "-c", script]

    def run(self, script: str, stdin: bytes | None = None, timeout: float = 600) -> str:
        result = subprocess.run(self.command(script), input=stdin, capture_output=True, timeout=timeout)
        output = (result.stdout + result.stderr).decode(errors="replace").strip()
        if result.returncode != 0:
            raise DeployError(f"on {self.where}: {output or f'exit {result.returncode}'}")
        return output

    def copy(self, folder: Path, destination: str) -> None:
        """`folder`'s contents into `destination` (created), as one tar stream."""
        quoted = shlex.quote(destination)
        self.run(f"mkdir -p {quoted} && tar -C {quoted} -xf -", stdin=_tar(folder))


class SSHRunner(LocalRunner):
    def __init__(self, host: str, ssh_config: str | Path | None = None):
        if ssh_config and not Path(ssh_config).is_file():
            raise EdgeKDError(f"{ssh_config}: ssh config file not found")
        self.host, self.where = host, host
        self.options = ["-o", "BatchMode=yes"]  # fail instead of prompting: deploy runs unattended
        if ssh_config:
            self.options += ["-F", str(ssh_config)]
        self.options += shlex.split(os.environ.get(SSH_OPTIONS_ENV, ""))

    def command(self, script: str) -> list[str]:
        return ["ssh", *self.options, self.host, "sh -c " + shlex.quote(script)]
