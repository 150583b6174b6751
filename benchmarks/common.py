"""What the benchmark scripts share: a pool of one-thread training processes, seed statistics, environment."""

from __future__ import annotations

import multiprocessing
import platform
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_pool(run_job: Callable[[dict], dict], jobs: list[dict], workers: int, describe: Callable[[dict], str]) -> list:
    """Run jobs in `workers` spawned processes (no fork after torch has started threads); results in job order."""
    ctx = multiprocessing.get_context("spawn")
    results = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = [pool.submit(run_job, job) for job in jobs]
        for future in futures:
            result = future.result()
            log(f"  {result['name']}: {describe(result)} ({result['seconds']:.0f} s)")
            results.append(result)
    return results


def summarise(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "values": values,
    }


def environment(workers: int) -> dict:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "workers": workers,
    }
