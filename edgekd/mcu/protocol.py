"""Host side of the serial protocol (docs/mcu.md) over any pyserial-like link (`serial_for_url`: a USB port or
`socket://` to QEMU; `PipeLink` for the host build). Every read has a deadline: a silent, reset or babbling
device raises DeviceError naming what happened, never hangs."""

from __future__ import annotations

import os
import select
import subprocess
import time
import zlib
from dataclasses import dataclass

from edgekd.errors import EdgeKDError

CHUNK_BYTES = 256  # per `db` line: 512 hex digits, well under the firmware's 1024-character limit
MAX_REPLY_BYTES = 1 << 20  # a reply longer than this is babble


class DeviceError(EdgeKDError):
    """The device did not answer as the protocol says (silent, reset, babbling or an m-error line)."""


class PipeLink:
    """A child process's stdin/stdout with pyserial's read/write/timeout interface (the host port)."""

    def __init__(self, process: subprocess.Popen):
        self.process = process
        self.timeout = 1.0
        self.closed_by_peer = False

    def write(self, data: bytes) -> int:
        try:
            self.process.stdin.write(data)
            self.process.stdin.flush()
        except BrokenPipeError as error:
            raise DeviceError("the device closed its input (it exited)") from error
        return len(data)

    def read(self, size: int = 1) -> bytes:
        fd = self.process.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], self.timeout)
        if not ready:
            return b""
        data = os.read(fd, max(size, 4096))
        self.closed_by_peer = data == b""
        return data

    def close(self) -> None:
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass


@dataclass
class InferResult:
    unit: str
    laps: list[int]  # one per timed run, in `unit`
    layer_ticks: list[int]  # per layer, summed over the timed runs


class McuClient:
    def __init__(self, link, timeout: float = 10.0):
        self.link = link
        self.timeout = timeout
        self._buffer = b""

    def _readline(self, deadline: float, what: str) -> str:
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 and self._buffer:
                raise DeviceError(f"the device sent {len(self._buffer)} bytes without a line end ({what!r}): babbling?")
            if remaining <= 0:
                raise DeviceError(f"no answer to {what!r} within the timeout (device silent or hung)")
            if len(self._buffer) > MAX_REPLY_BYTES:
                raise DeviceError(f"the device sent over {MAX_REPLY_BYTES} bytes without a line end ({what!r})")
            try:
                self.link.timeout = min(remaining, 0.5)
                chunk = self.link.read(1)  # pyserial's read(n) waits for all n bytes: one, then what is there
                if chunk:
                    self.link.timeout = 0
                    chunk += self.link.read(65536)
            except OSError as error:  # a closed socket or port: the device went away
                raise DeviceError(f"the serial link failed during {what!r}: {error}") from error
            if chunk == b"" and getattr(self.link, "closed_by_peer", False):
                raise DeviceError(f"the device closed the link during {what!r}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("ascii", "replace").strip()

    def command(self, command: str, timeout: float | None = None) -> list[str]:
        """Sends `command%`; returns the reply lines before `m-ready`. m-error lines raise DeviceError."""
        deadline = time.monotonic() + (timeout or self.timeout)
        self.link.write(command.encode("ascii") + b"%")
        lines, received = [], 0
        while (line := self._readline(deadline, command)) != "m-ready":
            if line == "m-boot":
                raise DeviceError(f"the device reset during {command!r}")
            if line.startswith("m-error-"):
                self._readline(deadline, command)  # its m-ready
                raise DeviceError(f"the device refused {command[:40]!r}: {line[8:]}")
            received += len(line)
            if received > MAX_REPLY_BYTES:
                raise DeviceError(f"the device babbles: over {MAX_REPLY_BYTES} bytes in reply to {command!r}")
            if line:
                lines.append(line)
        return lines

    def sync(self, timeout: float | None = None) -> str:
        """Skips whatever the device printed before (boot banner, a half-finished reply); returns its name."""
        deadline = time.monotonic() + (timeout or self.timeout)
        self.link.write(b"%name%")
        name = None
        while True:
            line = self._readline(deadline, "name")
            if line.startswith("m-name-"):
                name = line[7:]
            elif line == "m-ready" and name:
                return name

    def profile(self) -> dict:
        info = {}
        for line in self.command("profile"):
            key, _, value = line.removeprefix("m-profile-").partition("-")
            info[key] = int(value) if value.isdigit() else value
        return info

    def upload(self, data: bytes) -> None:
        self.command(f"db load {len(data)}")
        for start in range(0, len(data), CHUNK_BYTES):
            chunk = data[start : start + CHUNK_BYTES]
            reply = self.command(f"db {chunk.hex()} {zlib.crc32(chunk):08x}")
            if reply != [f"m-db-{start + len(chunk)}"]:
                raise DeviceError(f"upload out of step at byte {start}: {reply}")

    def infer(self, runs: int, warmup: int, timeout: float | None = None) -> InferResult:
        lines = self.command(f"infer {runs} {warmup}", timeout)
        laps, layers, unit = [], [], "?"
        for line in lines:
            if line.startswith("m-lap-"):
                unit, _, value = line[6:].rpartition("-")
                laps.append(int(value))
            elif line.startswith("m-layer-"):
                layers.append(int(line.rpartition("-")[2]))
        if len(laps) != runs:
            raise DeviceError(f"expected {runs} laps, got {len(laps)}")
        return InferResult(unit, laps, layers)

    def results(self) -> list[bytes]:
        lines = self.command("results")
        return [bytes.fromhex(line.split("-", 3)[3]) for line in lines if line.startswith("m-results-")]
