"""What every peer role shares: stamped payloads, pacing, latency samples, the result shape.

Latency is one-way: the publisher writes `time.monotonic_ns()` into the first 8 bytes of
the payload just before it hands the message to the client library, and the subscriber
subtracts it from its own `time.monotonic_ns()` on receipt. CLOCK_MONOTONIC is one
system-wide clock on Linux, so both processes read the same clock.
"""

from __future__ import annotations

import array
import ctypes
import json
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STAMP = 8  # bytes of monotonic_ns at the start of every payload
now_ns = time.monotonic_ns
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9))


def padding(size: int) -> bytes:
    if size < STAMP:
        raise ValueError(f"payload size must be at least {STAMP} bytes")
    return b"x" * (size - STAMP)


def stamp(pad: bytes) -> bytes:
    """A payload stamped with the current monotonic clock."""
    return now_ns().to_bytes(STAMP, "little") + pad


def sent_at(payload: bytes | memoryview) -> int:
    return int.from_bytes(payload[:STAMP], "little")


def tight_timers() -> None:
    """Ask Linux for 1 ns timer slack so paced sleeps wake close to their deadline."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK
    except (OSError, AttributeError):
        pass


def deadlines(count: int, rate: float | None, lead_ns: int = 1_000_000) -> Iterator[int]:
    """Yield 0..count-1; with a rate, each one at its absolute deadline t0 + i/rate.

    Deadlines are absolute, so a late wake-up is not carried over into the next period:
    the long-run rate stays exactly `rate`.
    """
    if not rate:
        yield from range(count)
        return
    period = 1e9 / rate
    t0 = now_ns() + lead_ns
    sleep = time.sleep
    for i in range(count):
        delay = t0 + int(i * period) - now_ns()
        if delay > 0:
            sleep(delay / 1e9)
        yield i


class Samples:
    """Latency samples (ns) kept in a compact array; every `every`-th message is sampled."""

    def __init__(self, every: int = 1) -> None:
        self.every = max(1, every)
        self.values = array.array("q")

    def add(self, payload: bytes | memoryview, received_ns: int) -> None:
        self.values.append(received_ns - sent_at(payload))

    def save(self, path: str | None) -> None:
        if path:
            Path(path).write_bytes(self.values.tobytes())


def load_samples(paths: list[str]) -> array.array:
    values = array.array("q")
    for path in paths:
        p = Path(path)
        if p.exists():
            values.frombytes(p.read_bytes())
    return values


def percentiles_us(samples_ns: array.array | list[int]) -> dict[str, float | None]:
    """Nearest-rank percentiles in microseconds; None when there are no samples."""
    ordered = sorted(samples_ns)
    out: dict[str, float | None] = {}
    n = len(ordered)
    for name, q in PERCENTILES:
        out[name] = None if not n else ordered[min(n - 1, max(0, int(q / 100 * n + 0.5) - 1))] / 1e3
    out["max"] = ordered[-1] / 1e3 if n else None
    return out


def result(
    *,
    published: int,
    received: int,
    expected: int,
    duration_s: float,
    size: int,
    subscribers: int,
    samples_ns: array.array | list[int],
    **extra: Any,
) -> dict[str, Any]:
    """The result shape shared with `zdps bench --json`."""
    duration_s = max(duration_s, 1e-9)
    deliveries_per_s = received / duration_s
    return {
        "published": published,
        "received": received,
        "expected": expected,
        "lost": max(0, expected - received),
        "duration_s": duration_s,
        "msgs_per_s": deliveries_per_s / max(1, subscribers),
        "deliveries_per_s": deliveries_per_s,
        "mb_per_s": deliveries_per_s * size / 1e6,
        "latency_us": percentiles_us(samples_ns),
        "latency_samples": len(samples_ns),
        **extra,
    }


# ------------------------------------------------------------ child-process protocol


def cpu_per_message(used: dict[str, float], published: int) -> dict[str, Any]:
    """A run's `cpu_s` (CPU seconds per process) and `cpu_us_per_msg` (µs per message
    published), each with `total`: every process on the data path, not `bench` (`zdps
    bench`'s coordinator, which starts Python and waits: a cost per run)."""
    used = used | {"total": sum(v for k, v in used.items() if k != "bench")}
    per_message = {k: round(v * 1e6 / published, 3) for k, v in used.items()} if published else {}
    return {"cpu_s": {k: round(v, 4) for k, v in used.items()}, "cpu_us_per_msg": per_message}


def own_cpu_seconds() -> float:
    """User + system CPU of this process so far, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ready(**info: Any) -> None:
    """Tell the parent this role is set up (subscribed, connected)."""
    sys.stdout.write("READY " + json.dumps(info) + "\n")
    sys.stdout.flush()


def report(values: dict[str, Any]) -> None:
    sys.stdout.write("RESULT " + json.dumps(values) + "\n")
    sys.stdout.flush()


class Receiving:
    """Bookkeeping for a subscriber: counts, first/last receipt, when to give up.

    A subscriber stops when it has what it expects, when nothing arrived for `idle_s`
    after the first message, or at the hard deadline `timeout_s` from its start.
    """

    def __init__(self, cfg: dict[str, Any], expected: int) -> None:
        self.expected = expected
        self.received = 0
        self.first_ns = 0
        self.last_ns = 0
        self.samples = Samples(cfg.get("sample_every", 1))
        self.started_ns = now_ns()
        self.deadline_ns = self.started_ns + int(cfg["timeout_s"] * 1e9)
        self.idle_ns = int(cfg["idle_s"] * 1e9)

    def done(self) -> bool:
        return self.received >= self.expected

    def expired(self) -> bool:
        t = now_ns()
        if t > self.deadline_ns:
            return True
        return bool(self.received) and t - self.last_ns > self.idle_ns

    def finish(self, cfg: dict[str, Any], **extra: Any) -> None:
        self.samples.save(cfg.get("samples_path"))
        report(
            {
                "received": self.received,
                "expected": self.expected,
                "first_ns": self.first_ns,
                "last_ns": self.last_ns,
                "timed_out": not self.done(),
                **extra,
            }
        )
