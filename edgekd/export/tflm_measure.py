"""Measure a `.tflite` in the tflite-micro Python interpreter: the smallest arena it loads in (bisected) and
one inference at that size. Torch-free.

The interpreter runs in a child process, because TFLM sometimes crashes (SIGSEGV) instead of failing
cleanly when the arena is a little too small, and because it prints its errors on the C stderr. A crash
counts as "does not fit" and a fresh child takes over. Nothing is cached between calls.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

MAX_ARENA = 256 << 20  # give up above this: the model does not load at all


def available() -> bool:
    return find_spec("tflite_micro") is not None


class _Child:
    """A child interpreter process answering JSON requests {"arena": N, "invoke": bool} line by line."""

    def __init__(self, path: Path, inputs: int):
        self.path, self.inputs, self.process = path, inputs, None

    def ask(self, arena: int, invoke: bool = False) -> dict:
        if self.process is None:
            command = [sys.executable, "-c", "from edgekd.export.tflm_measure import _serve; _serve()", str(self.path)]
            self.process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
        self.process.stdin.write(json.dumps({"arena": arena, "invoke": invoke, "inputs": self.inputs}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:  # the interpreter crashed on this arena size
            self.close()
            return {"ok": False, "error": "tflite-micro crashed", "crashed": True}
        return json.loads(line)

    def close(self) -> None:
        if self.process is not None:
            self.process.stdin.close()
            self.process.wait()
            self.process = None


def run_error(path: str | Path, arena: int, inputs: int = 1) -> str | None:
    """None when the model loads and runs one inference with `arena` bytes; else what tflite-micro said."""
    child = _Child(Path(path), inputs)
    try:
        answer = child.ask(arena, invoke=True)
    finally:
        child.close()
    return None if answer["ok"] else answer["error"]


def measure_arena(path: str | Path, inputs: int = 1, expected: int = 64 << 10, resolution: int = 256) -> dict:
    """The smallest arena (to `resolution` bytes) the model loads in, then one inference in exactly that.

    `expected` (e.g. the estimate) sets the first ceiling, 4x it; MAX_ARENA is tried before giving up.
    Returns `arena_bytes` (a size that works; the true minimum is at most `resolution` below it), the
    interpreter's own allocation report at that size (`reported`: head = planned activations, tail =
    persistent data), and `invoked`. Raises RuntimeError with tflite-micro's message when the model does
    not load even in MAX_ARENA bytes."""
    child = _Child(Path(path), inputs)
    try:
        low, high = 0, max(4 * expected, 1 << 20)
        if not child.ask(high)["ok"]:
            low, high = high, MAX_ARENA
            if not (answer := child.ask(high))["ok"]:
                raise RuntimeError(answer["error"])
        while high - low > resolution:
            middle = (low + high) // 2
            if child.ask(middle)["ok"]:
                high = middle
            else:
                low = middle
        run = child.ask(high, invoke=True)
    finally:
        child.close()
    return {
        "arena_bytes": high,
        "resolution_bytes": resolution,
        "invoked": run["ok"],
        "error": run.get("error"),
        "reported": run.get("reported", {}),
    }


def _serve() -> None:
    """Child side: load the model with each requested arena size, optionally invoke it once on zeros."""
    import os
    import re
    import tempfile

    import numpy as np
    from tflite_micro.python.tflite_micro import runtime

    path = sys.argv[1]
    replies = os.fdopen(os.dup(1), "w")  # TFLM logs through MicroPrintf; keep the reply channel clean
    for line in sys.stdin:
        request = json.loads(line)
        with tempfile.TemporaryFile() as captured:
            saved = os.dup(1), os.dup(2)
            os.dup2(captured.fileno(), 1)
            os.dup2(captured.fileno(), 2)
            try:
                interpreter = runtime.Interpreter.from_file(path, arena_size=request["arena"])
                if request["invoke"]:
                    for i in range(request["inputs"]):
                        detail = interpreter.get_input_details(i)
                        interpreter.set_input(np.zeros(detail["shape"], detail["dtype"]), i)
                    interpreter.invoke()
                    interpreter.print_allocations()
                answer = {"ok": True}
            except (RuntimeError, ValueError, IndexError) as error:
                answer = {"ok": False, "error": str(error)}
            finally:
                sys.stdout.flush()
                for fd, copy in zip((1, 2), saved, strict=True):
                    os.dup2(copy, fd)
                    os.close(copy)
            captured.seek(0)
            log = captured.read().decode(errors="replace")
        if not answer["ok"]:
            details = [line.strip() for line in log.splitlines() if line.strip()][-3:]
            answer["error"] = "; ".join([*details, answer["error"]])
        answer["reported"] = {k: int(v) for k, v in re.findall(r"Arena allocation (\w+) (\d+) bytes", log)}
        replies.write(json.dumps(answer) + "\n")
        replies.flush()
