"""One class per target, as esptool has one per chip: where the port lives, how to build the firmware for a
compiled model, and how to open a serial link to it. Missing tools raise ToolMissing naming the package."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from edgekd.errors import EdgeKDError
from edgekd.mcu.protocol import DeviceError, PipeLink

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


def _run(command: list[str], what: str, cwd: Path | None = None) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=cwd)
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


class CortexM4Qemu:
    """Bare-metal Cortex-M4 (mps2-an386) under qemu-system-arm, UART0 on a TCP socket, `-icount shift=0`."""

    name = "cortex-m4"
    port_dir = FIRMWARE / "ports" / "qemu-cortex-m4"
    cpu_flags = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=soft"]
    flags = ["-ffreestanding", "-fno-tree-loop-distribute-patterns", "-ffunction-sections", "-fdata-sections"]
    flags += ["-DEKD_PORT_CONV", "-DEKD_PORT_ADD"]  # kernels_dsp.c, depthwise_dsp.c, elementwise_dsp.c
    wide_weights = True  # convs that requantize in the MAC loop keep int16 weights (dot_2x2.S)
    flags += ["-DEKD_WIDE_WEIGHTS"] if wide_weights else []

    def build(self, model_c: Path, out_dir: Path) -> Path:
        gcc = require("arm-none-eabi-gcc", "gcc-arm-none-eabi (apt)")
        elf = out_dir / "firmware-cortex-m4.elf"
        sources = [str(CORE / s) for s in CORE_SOURCES] + [str(model_c)]
        port = ("startup.c", "port.c", "libc.c", "kernels_dsp.c", "depthwise_dsp.c", "elementwise_dsp.c")
        port += ("dot_2x2.S", "dw_rows.S")
        sources += [str(self.port_dir / f) for f in port]
        link = ["-nostdlib", "-nostartfiles", f"-T{self.port_dir / 'link.ld'}", "-Wl,--gc-sections", "-lgcc"]
        command = [gcc, *COMMON_FLAGS, *self.cpu_flags, *self.flags, *sources, "-o", str(elf), *link]
        _run(command, "cortex-m4 build")
        return elf

    def size(self, elf: Path) -> dict:
        """Flash (text + data) and static RAM (data + bss, the arena and 16 KB stack included) in bytes."""
        tool = require("arm-none-eabi-size", "binutils-arm-none-eabi (apt)")
        out = subprocess.run([tool, str(elf)], capture_output=True, text=True, check=True).stdout
        text, data, bss = (int(v) for v in out.splitlines()[1].split()[:3])
        return {"text": text, "data": data, "bss": bss, "flash": text + data, "static_ram": data + bss}

    def stack_peak(self, elf: Path, input_bytes: int) -> int:
        """Stack bytes used by one inference (the port paints its stack): the compiler's RAM figure."""
        from edgekd.mcu.protocol import McuClient

        link, process = self.start(elf)
        try:
            client = McuClient(link, timeout=60)
            client.sync()
            client.upload(bytes(input_bytes))
            client.infer(1, 0)
            return int(client.profile()["stack"])
        finally:
            link.close()
            process.kill()
            process.wait(timeout=10)

    def start(self, elf: Path, boot_timeout: float = 10.0):
        """Boots the firmware in QEMU; returns (pyserial link, the QEMU process)."""
        import serial

        qemu = require("qemu-system-arm", "qemu-system-arm (apt)")
        with socket.socket() as probe:  # a free port; QEMU listens on it and waits for us to connect
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        serial_arg = f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on"
        command = [qemu, "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", serial_arg]
        command += ["-kernel", str(elf), "-icount", "shift=0"]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + boot_timeout
        while True:
            try:
                return serial.serial_for_url(f"socket://127.0.0.1:{port}", timeout=1.0), process
            except (serial.SerialException, OSError) as error:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    message = process.stderr.read().decode(errors="replace")[-500:]
                    raise DeviceError(f"QEMU did not open its serial port: {message or error}") from error
                time.sleep(0.05)


class Esp32:
    """ESP-IDF project in firmware/ports/esp32: built and flashed by `edgekd.mcu.deploy_esp32`."""

    name = "esp32"

    def build(self, model_c: Path, out_dir: Path) -> Path:
        from edgekd.mcu.deploy import PROJECT, missing_tools

        shutil.copy(model_c, PROJECT / "main" / "model.c")
        if missing := missing_tools():
            raise ToolMissing(f"copied the model to {PROJECT / 'main'}; to build: " + "; ".join(missing))
        _run(["idf.py", "build"], "idf.py build", cwd=PROJECT)
        return PROJECT / "build"


TARGET_CLASSES = {"host": Host, "cortex-m4": CortexM4Qemu, "esp32": Esp32}
