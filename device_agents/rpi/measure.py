"""One agent measurement: `edgekd bench` of the model (latency, memory, accuracy when a labelled dataset is
given), then, with a frame source, pre-processing + model + decoding timed on real frames, and the CPU
temperature where the board exposes it. The result is a validated `edgekd-report/1`."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgekd.bench.bench import BenchOptions, bench_models
from edgekd.bench.latency import latency_stats
from edgekd.bench.report import validate_report
from edgekd.runtime.engine import Engine

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")


def cpu_temperature_c() -> float | None:
    try:
        return int(THERMAL_ZONE.read_text().strip()) / 1000
    except (OSError, ValueError):
        return None


def frame_latency(model: Path, source, frames: int, threads: int) -> dict:
    engine = Engine(model, threads)
    seconds = []
    for _ in range(frames):
        image = source.read()
        started = time.perf_counter()
        engine.predict(image)
        seconds.append(time.perf_counter() - started)
    return {**latency_stats(seconds), "warmup": 0}


def measure(model: Path, options: BenchOptions, source=None, frames: int = 0) -> dict:
    report = bench_models([model], options)[0]
    if report["status"] == "ok" and source is not None and frames > 0:
        report["end_to_end"] = frame_latency(model, source, frames, options.threads)
        report["source"] = {**source.describe(), "frames": frames}
    temperature = cpu_temperature_c()
    if temperature is not None:
        report["environment"]["cpu_temperature_c"] = temperature
    return validate_report(report)


def health_check(model: Path, threads: int = 1) -> str | None:
    """None when the model loads, runs and gives finite outputs of the shapes its manifest promises; else why not."""
    try:
        engine = Engine(model, threads)
        image = np.random.default_rng(0).integers(0, 256, (engine.height, engine.width, 3), dtype=np.uint8)
        x, _ = engine.preprocess(image)
        outputs = engine.infer(x)
        for given, promised in zip(outputs, engine.manifest["outputs"], strict=True):
            shape = [d for d in promised["shape"] if isinstance(d, int)]
            if not np.all(np.isfinite(given)):
                return f"{model.name}: output {promised['name']} is not finite"
            if len(shape) == given.ndim and list(given.shape[1:]) != shape[1:]:
                return f"{model.name}: output {promised['name']} has shape {list(given.shape)}, expected {shape}"
        engine.predict(image)
    except Exception as error:  # anything the model does wrong fails the check
        return f"{model.name}: {type(error).__name__}: {error}"
    return None
