"""Latency of a callable: warm-up, then timed runs, summarised in milliseconds. The clock is a parameter so
the statistics can be tested against a fake clock."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def time_runs(run: Callable[[], object], runs: int, warmup: int = 5, clock=time.perf_counter) -> list[float]:
    """Seconds of each of `runs` calls of `run`, after `warmup` untimed calls."""
    for _ in range(warmup):
        run()
    seconds = []
    for _ in range(runs):
        started = clock()
        run()
        seconds.append(clock() - started)
    return seconds


def time_for(
    run: Callable[[], object], seconds: float, warmup: int = 5, clock=time.perf_counter, max_runs: int = 1_000_000
) -> list[float]:
    """Seconds of each call of `run`, calling it until `seconds` have passed (at least once), after `warmup`."""
    for _ in range(warmup):
        run()
    times, started = [], clock()
    while not times or (clock() - started < seconds and len(times) < max_runs):
        before = clock()
        run()
        times.append(clock() - before)
    return times


def latency_stats(seconds: list[float]) -> dict:
    """min / mean / p50 / p95 / p99 / std in ms, and FPS at the median."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000
    if ms.size == 0:
        raise ValueError("no timed runs")
    p50 = float(np.percentile(ms, 50))
    return {
        "runs": int(ms.size),
        "min_ms": float(ms.min()),
        "mean_ms": float(ms.mean()),
        "p50_ms": p50,
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "std_ms": float(ms.std()),
        "fps": 1000.0 / p50 if p50 > 0 else float("inf"),
    }
