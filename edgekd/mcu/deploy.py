"""`deploy_esp32`: compile a model into the ESP-IDF project, build it with `idf.py` and flash it with esptool
(through `idf.py flash`). What `edgekd deploy --target esp32` dispatches to; every missing tool is named."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from edgekd.mcu.compiler import CompiledModel, compile_model
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
    model: str | Path, port: str, chip: str = "esp32s3", flash: bool = True, build_dir: Path | None = None
) -> CompiledModel:
    """Compiles `model` into the ESP-IDF project; builds and flashes it to `port`. Raises ToolMissing naming
    what is not installed (the compiled C is written first, so it can be built elsewhere)."""
    compiled = compile_model(model, PROJECT / "main")
    missing = missing_tools()
    if missing:
        raise ToolMissing(f"compiled {compiled.c_file}, but cannot build or flash: missing " + "; ".join(missing))
    build = ["-B", str(build_dir)] if build_dir else []
    env = os.environ.copy()
    for args in (["set-target", chip], ["build"], ["-p", port, "flash"] if flash else None):
        if args is None:
            continue
        done = subprocess.run(["idf.py", *build, *args], cwd=PROJECT, env=env, capture_output=True, text=True)
        if done.returncode:
            raise ToolMissing(f"idf.py {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return compiled
