"""One class per target, as esptool has one per chip: where the port lives, how to build the firmware for a
compiled model, and how to open a serial link to it. Missing tools raise ToolMissing naming the package."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from edgekd.errors import EdgeKDError
from edgekd.mcu.protocol import PipeLink

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
CORE = FIRMWARE / "core"
CORE_SOURCES = ["ekd_kernels.c", "ekd_protocol.c"]
COMMON_FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-ffp-contract=off", f"-I{CORE}"]


class ToolMissing(EdgeKDError):
    """A compiler, emulator or flasher the target needs is not installed."""


def require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise ToolMissing(f"{tool} not found: install {package}")
    return path


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise EdgeKDError(f"{what} failed:\n{done.stderr[-3000:]}")


class Host:
    """gcc build speaking the protocol on stdin/stdout: tests and fuzzing."""

    name = "host"

    def build(self, model_c: Path, out_dir: Path) -> Path:
        port = FIRMWARE / "ports" / "host" / "port.c"
        binary = out_dir / "firmware-host"
        sources = [str(CORE / s) for s in CORE_SOURCES] + [str(port), str(model_c)]
        _run([require("gcc", "gcc"), *COMMON_FLAGS, *sources, "-o", str(binary)], "host build")
        return binary

    def start(self, binary: Path) -> tuple[PipeLink, subprocess.Popen]:
        process = subprocess.Popen([str(binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        return PipeLink(process), process
