"""`edgekd bench-mcu`: a compiled model on a microcontroller (a serial port, `socket://` to QEMU, or a QEMU
this command boots itself), measured like any other device: laps and per-layer counts from the device, RAM
and flash, and accuracy through the engine's own pre- and post-processing with the device as its backend."""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgekd.bench.latency import latency_stats
from edgekd.bench.report import new_report
from edgekd.mcu.compiler import CompiledModel, compile_model
from edgekd.mcu.protocol import DeviceError, McuClient
from edgekd.mcu.targets import CortexM4Qemu
from edgekd.runtime.backends import dequantize, quantize

SECONDS_PER_UNIT = {"instr": 1e-9, "ns": 1e-9, "us": 1e-6}  # QEMU -icount shift=0: 1 instruction = 1 ns


@dataclass
class McuOptions:
    runs: int = 10
    warmup: int = 1
    data: str | None = None
    max_images: int | None = None
    timeout: float = 30.0
    device_id: str | None = None
    work_dir: Path | None = None
    on_exchange: Callable[[bytes, list[bytes]], None] | None = None  # each accuracy image's int8 input and outputs


class McuBackend:
    """The device behind the runtime backend interface (NCHW float in and out), so Engine's pre- and
    post-processing run unchanged on device outputs."""

    runtime = "edgekd-mcu"

    def __init__(self, client: McuClient, description: dict, on_exchange=None):
        self.client = client
        self.description = description
        self.on_exchange = on_exchange

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        spec = self.description["input"]
        sample = x.transpose(0, 2, 3, 1) if x.ndim == 4 else x
        return self.run_native(quantize(sample, spec["scale"], spec["zero_point"], np.int8))

    def run_native(self, q: np.ndarray) -> list[np.ndarray]:
        """An input already NHWC int8 (the Engine's table lookup on the .tflite's quantization, which the
        compiled model shares)."""
        sample = q.astype(np.int8).tobytes()
        self.client.upload(sample)
        self.client.infer(1, 0)
        raws = self.client.results()
        if self.on_exchange:
            self.on_exchange(sample, raws)
        outputs = []
        for raw, spec in zip(raws, self.description["outputs"], strict=True):
            value = dequantize(np.frombuffer(raw, np.int8).reshape(spec["shape"]), spec["scale"], spec["zero_point"])
            outputs.append(value.transpose(0, 3, 1, 2) if value.ndim == 4 else value)
        return outputs


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def open_device(compiled: CompiledModel, port: str | None, work_dir: Path, timeout: float):
    """(client, cleanup, sizes): a serial URL given, or a QEMU Cortex-M4 booted with a fresh build."""
    if port:
        import serial

        link = serial.serial_for_url(port, baudrate=115200, timeout=1.0)
        return McuClient(link, timeout), link.close, {}
    target = CortexM4Qemu()
    elf = target.build(compiled.c_file, work_dir)
    link, process = target.start(elf)

    def cleanup():
        link.close()
        process.kill()
        process.wait(timeout=10)

    return McuClient(link, timeout), cleanup, target.size(elf)


def measure(client: McuClient, compiled: CompiledModel, sample: bytes, options: McuOptions) -> dict:
    """Identify, upload, run warm-up + timed runs; laps, per-layer counts and the outputs."""
    name = client.sync()
    profile = client.profile()
    if profile.get("input") != compiled.description["input"]["bytes"]:
        raise DeviceError(f"the device runs another model (input {profile.get('input')} bytes): flash this one")
    client.upload(sample)
    result = client.infer(options.runs, options.warmup, timeout=options.timeout)
    profile = client.profile()  # again: the stack high-water mark now includes the inferences
    return {"name": name, "profile": profile, "infer": result, "outputs": client.results()}


def _model_entry(path: Path, compiled: CompiledModel) -> dict:
    task = "classify" if len(compiled.description["outputs"][0]["shape"]) == 2 else "detect"
    manifest = path.with_name(path.name + ".json")
    if manifest.is_file():
        import json

        task = json.loads(manifest.read_text()).get("task", task)
    return {
        "file": str(path),
        "sha256": compiled.description["sha256"],
        "format": "c",
        "precision": "int8",
        "task": task,
        "size_bytes": path.stat().st_size,
        "verified": manifest.is_file(),
    }


def _conv_per_mac(layers: list[dict], unit: str) -> float | None:
    """Counts per MAC over the layers with MACs (conv, depthwise, fully connected): what latency follows."""
    conv = [layer for layer in layers if layer["macs"]]
    return sum(layer[unit] for layer in conv) / sum(layer["macs"] for layer in conv) if conv else None


def bench_mcu(model: str | Path, port: str | None = None, options: McuOptions | None = None) -> dict:
    """The `edgekd-report/1` report of `model` (an int8 .tflite) on the device. `report["mcu"]` holds what the
    schema has no field for: laps and per-layer counts in the device's unit, arena, stack, flash, the input
    sent and the outputs received (hex, for bit-exactness checks)."""
    options = options or McuOptions()
    model = Path(model)
    work = Path(options.work_dir or tempfile.mkdtemp(prefix="edgekd-mcu-"))
    started = _now()
    compiled = compile_model(model, work)
    client, cleanup, sizes = open_device(compiled, port, work, options.timeout)
    try:
        spec = compiled.description["input"]
        sample = np.random.default_rng(0).integers(-128, 128, spec["bytes"], dtype=np.int8).tobytes()
        run = measure(client, compiled, sample, options)
        accuracy = None
        if options.data:
            from edgekd.bench.accuracy import measure_accuracy
            from edgekd.runtime.engine import Engine

            engine = copy.copy(Engine(model))
            engine.backend = McuBackend(client, compiled.description, options.on_exchange)
            accuracy = measure_accuracy(engine, options.data, options.max_images)
    finally:
        cleanup()
    infer = run["infer"]
    scale = SECONDS_PER_UNIT.get(infer.unit, 1e-9)
    latency = latency_stats([lap * scale for lap in infer.laps]) | {"warmup": options.warmup}
    layers = []
    for layer, ticks in zip(compiled.description["layers"], infer.layer_ticks, strict=False):
        per_run = ticks / options.runs
        entry = layer | {infer.unit: per_run}
        if layer["macs"]:
            entry[f"{infer.unit}_per_mac"] = per_run / layer["macs"]
        layers.append(entry)
    profile = run["profile"]
    ram = compiled.arena_bytes + int(profile.get("stack", 0))
    memory = {"peak_rss_bytes": max(ram, 1), "load_delta_bytes": None, "runs_delta_bytes": None}
    report = new_report(
        model=_model_entry(model, compiled),
        runtime={"name": "edgekd-mcu", "version": run["name"]},
        threads=1,
        started_at=started,
        finished_at=_now(),
        init_ms=0.0,
        first_inference_ms=infer.laps[0] * scale * 1000,
        latency=latency,
        memory=memory,
        accuracy=accuracy,
        device_id=options.device_id or run["name"],
        device_kind="mcu",
    )
    report["mcu"] = {
        "unit": infer.unit,
        "per_inference": float(np.median(infer.laps)),
        "laps": infer.laps,
        "arena_bytes": compiled.arena_bytes,
        "stack_bytes": int(profile.get("stack", 0)),
        "weight_bytes": compiled.description["weight_bytes"],
        "macs": compiled.description["macs"],
        "conv_per_mac": _conv_per_mac(layers, infer.unit),
        "sizes": sizes,
        "layers": layers,
        "outputs_hex": [o.hex() for o in run["outputs"]],
        "input_hex": sample.hex(),
    }
    return report
