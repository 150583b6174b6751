"""Latency statistics against a fake clock: exact, repeatable numbers."""

import pytest

from edgekd.bench.latency import latency_stats, time_runs


class FakeClock:
    """Each call of the timed function advances the clock by the next duration."""

    def __init__(self, durations):
        self.now, self.durations = 0.0, list(durations)

    def __call__(self):
        return self.now

    def run(self):
        self.now += self.durations.pop(0)


def test_time_runs_skips_warmup_and_measures_each_call():
    clock = FakeClock([9.0, 9.0, 0.001, 0.002, 0.003, 0.004])
    seconds = time_runs(clock.run, runs=4, warmup=2, clock=clock)
    assert seconds == pytest.approx([0.001, 0.002, 0.003, 0.004])


def test_latency_stats_in_milliseconds():
    stats = latency_stats([i / 1000 for i in range(1, 101)])  # 1 ms .. 100 ms
    assert stats["runs"] == 100
    assert stats["min_ms"] == pytest.approx(1.0)
    assert stats["mean_ms"] == pytest.approx(50.5)
    assert stats["p50_ms"] == pytest.approx(50.5)
    assert stats["p95_ms"] == pytest.approx(95.05)
    assert stats["p99_ms"] == pytest.approx(99.01)
    assert stats["fps"] == pytest.approx(1000 / 50.5)
    with pytest.raises(ValueError):
        latency_stats([])
