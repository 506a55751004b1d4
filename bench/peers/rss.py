"""Resident memory of the daemons (VmRSS, through psutil), sampled while a workload runs."""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import psutil

MIB = 1024 * 1024


def rss(pid: int) -> int | None:
    try:
        return psutil.Process(pid).memory_info().rss
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


class Sampler:
    """Samples the RSS of named pids every `interval` s in a thread, from start to stop."""

    def __init__(self, pids: dict[str, int], interval: float = 0.25) -> None:
        self.pids = pids
        self.interval = interval
        self.series: dict[str, list[tuple[float, int]]] = {name: [] for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = time.monotonic()

    def _sample(self) -> None:
        t = time.monotonic() - self._t0
        for name, pid in self.pids.items():
            value = rss(pid)
            if value is not None:
                self.series[name].append((t, value))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> Sampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sample()

    def summary(self) -> dict[str, dict[str, float]]:
        """Per daemon: RSS in MiB at start, peak and end, and the number of samples."""
        out = {}
        for name, points in self.series.items():
            if points:
                values = [v for _, v in points]
                out[name] = {
                    "start_mib": values[0] / MIB,
                    "peak_mib": max(values) / MIB,
                    "end_mib": values[-1] / MIB,
                    "samples": len(values),
                }
        return out


def flatness(points: list[tuple[float, int]]) -> dict[str, Any]:
    """Is RSS flat over a steady run? Compares the median of the samples in 20-40 % of the
    run (after warm-up) with the median of the last 20 %: flat when the growth is at most
    max(2 MiB, 3 %). Also reports the least-squares slope in MiB/min."""
    if len(points) < 10:
        return {"flat": None, "reason": "too few samples"}
    n = len(points)
    values = [v / MIB for _, v in points]
    early = statistics.median(values[int(n * 0.2) : max(int(n * 0.4), int(n * 0.2) + 1)])
    late = statistics.median(values[int(n * 0.8) :])
    growth = late - early
    ts = [t for t, _ in points]
    mean_t, mean_v = statistics.fmean(ts), statistics.fmean(values)
    var_t = sum((t - mean_t) ** 2 for t in ts) or 1e-9
    slope = sum((t - mean_t) * (v - mean_v) for t, v in zip(ts, values, strict=True)) / var_t
    return {
        "flat": growth <= max(2.0, 0.03 * early),
        "early_mib": early,
        "late_mib": late,
        "growth_mib": growth,
        "slope_mib_per_min": slope * 60,
        "start_mib": values[0],
        "peak_mib": max(values),
        "end_mib": values[-1],
        "duration_s": ts[-1] - ts[0],
        "samples": n,
    }
