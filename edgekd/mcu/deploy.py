"""`deploy_esp32`: compile a model into the ESP-IDF project, build it with `idf.py` and flash it with esptool
(through `idf.py flash`). `edgekd deploy --target esp32` (edgekd/deploy/targets.py) dispatches here; every
missing tool is named."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from edgekd.errors import ConfigError
from edgekd.mcu.compiler import compile_model
from edgekd.mcu.targets import FIRMWARE, ToolMissing

PROJECT = FIRMWARE / "ports" / "esp32"


def missing_tools() -> list[str]:
    missing = []
    if not shutil.which("idf.py"):
        missing.append("idf.py (ESP-IDF v5.x: install it and run `. $IDF_PATH/export.sh`)")
    if not (shutil.which("esptool.py") or shutil.which("esptool")):
        missing.append("esptool (pip install esptool; ESP-IDF's export.sh also provides it)")
    return missing


def deploy_esp32(
    model: str | Path | None = None,
    port: str | None = None,
    *,
    models: list | None = None,
    dry_run: bool = False,
    chip: str = "esp32s3",
    project: Path = PROJECT,
) -> str:
    """Compiles the model into `project`/main, then `idf.py set-target`, `build` and `-p PORT flash`.
    Returns the model's sha256 (the id of what the board now runs). `dry_run` stops after compiling.
    Raises ToolMissing naming what is not installed; the compiled C is written first either way."""
    chosen = [Path(m) for m in (models or [])] + ([Path(model)] if model else [])
    if len(chosen) != 1:
        raise ConfigError(f"--target esp32 flashes exactly one model (an int8 .tflite), got {len(chosen)}")
    if not port and not dry_run:
        raise ConfigError("--target esp32 needs the serial port (--host /dev/ttyUSB0)")
    compiled = compile_model(chosen[0], Path(project) / "main")
    if dry_run:
        return compiled.description["sha256"]
    if missing := missing_tools():
        raise ToolMissing(f"compiled {compiled.c_file}, but cannot build or flash: missing " + "; ".join(missing))
    for args in (["set-target", chip], ["build"], ["-p", port, "flash"]):
        done = subprocess.run(["idf.py", *args], cwd=project, capture_output=True, text=True)
        if done.returncode:
            raise ToolMissing(f"idf.py {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return compiled.description["sha256"]
