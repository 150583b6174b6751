"""`edgekd fleet reports --plot out.png`: model latency (p50 of each report) per device, as box plots."""

from __future__ import annotations

from pathlib import Path

from edgekd.errors import ConfigError


def latency_per_device(rows: list[dict], path: str | Path, title: str = "model latency per device") -> Path:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'edgekd[fleet]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_device: dict[str, list[float]] = {}
    for row in rows:
        if row["p50_ms"] is not None:
            by_device.setdefault(row["device_id"], []).append(row["p50_ms"])
    if not by_device:
        raise ConfigError("no successful reports to plot (filters too narrow, or only error reports)")
    devices = sorted(by_device)
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(devices) + 2), 4.5))
    ax.boxplot([by_device[d] for d in devices], showfliers=True)
    ax.set_xticks(range(1, len(devices) + 1), devices, rotation=45 if len(devices) > 6 else 0, ha="right")
    ax.set_ylabel("p50 latency per report (ms)")
    ax.set_title(f"{title} ({sum(map(len, by_device.values()))} reports)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
