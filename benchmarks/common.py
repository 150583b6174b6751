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


def targets_table(targets: dict) -> list[str]:
    """Markdown lines: every target with its measured value and whether it was met."""
    import json

    lines = ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for name, target in targets.items():
        value = target["value"]
        shown = json.dumps(value, default=lambda x: round(x, 4)) if isinstance(value, dict) else f"{value:.4f}"
        lines.append(f"| {name} | {shown} | {'yes' if target['met'] else 'NO'} |")
    return lines


def bar_chart(names, means, stds, reference: float, reference_label: str, xlabel: str, title: str, path) -> None:
    """Horizontal bars with seed error bars and the teacher as a dashed line, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 0.45 * len(names) + 1.5))
    ax.barh(names, means, xerr=stds, color="#4c72b0")
    ax.axvline(reference, color="#c44e52", ls="--", label=reference_label)
    low, high = min(min(means), reference), max(max(means), reference)
    margin = max(0.05 * (high - low), 1e-3)
    ax.set_xlim(max(0.0, low - 3 * margin), high + margin)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
