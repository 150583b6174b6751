"""Resident memory of this process, from the standard library: the peak from `getrusage`, the current value from
/proc/self/statm (Linux), else psutil when it is installed, else unknown. Torch-free."""

from __future__ import annotations

import os
import sys


def peak_rss_bytes() -> int:
    """The process's peak resident set so far (it never decreases)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # Linux reports KiB, macOS bytes


def current_rss_bytes() -> int | None:
    """The resident set now, or None where neither /proc nor psutil can tell."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.Process().memory_info().rss)


def rss_delta(before: int | None, after: int | None) -> int | None:
    return None if before is None or after is None else after - before
