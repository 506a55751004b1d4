"""``zdps bench``: publishers and subscribers in separate processes, against running nodes.

Like ``nats bench``: subscribers start first and wait until each subscription is live
at the topic's owner; then publishers send ``count`` messages each (or for
``duration`` seconds), optionally paced to ``rate`` messages/s by absolute deadlines.
Each payload starts with the send time (``time.monotonic_ns``, one clock for every
process on Linux), so subscribers measure one-way latency. Subscribers check that
every (topic, epoch) stream arrives with consecutive seq numbers: loss, duplicates and
reordering are counted, never hidden.

With no subscribers (``subscribers=0``) it only publishes, for subscribers outside the
bench (a raw SUB in another language, say): the result says what was sent, published
and acknowledged, and when publishing started and ended on the machine's monotonic
clock.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from zdps.bench_workers import publisher, subscriber
from zdps.client.protocol import STREAM_BATCH
from zdps.memory import keep_freed_memory


@dataclass
class BenchConfig:
    pub_nodes: list[str]
    sub_nodes: list[str]
    topic: str = "bench"
    publishers: int = 1
    subscribers: int = 1
    count: int = 100_000
    size: int = 64
    rate: float = 0.0  # per publisher; 0 = as fast as flow control allows
    duration: float = 0.0  # > 0: publish for this long instead of ``count`` messages
    batch: int = STREAM_BATCH
    window: int = 20_000
    ack: str = "owner"  # "none", "owner" or "replicated" (see Client.publish)
    sub_procs: int = 0  # 0: one process per subscriber, at most 2 (the machine's cores)
    batches: bool = False  # subscribers receive whole batches (the batch PUB)
    timeout: float = 30.0  # seconds a client waits for its node (and workers to be ready)


# ---------------------------------------------------------------------- coordinator


def run(config: BenchConfig, show_progress: bool = True) -> dict[str, Any]:
    """Run one benchmark and return its figures (the ``--json`` object)."""
    keep_freed_memory()  # as the daemon does; the forked workers inherit it
    ctx = mp.get_context("fork")
    ready, results, pub_results = ctx.Queue(), ctx.Queue(), ctx.Queue()
    progress = {"received": ctx.Value("q", 0), "done": ctx.Value("b", 0)}
    start = ctx.Event()
    procs = min(config.sub_procs or 2, config.subscribers)  # none without subscribers
    shares = [config.subscribers // procs + (i < config.subscribers % procs) for i in range(procs)]
    subs = [
        ctx.Process(target=subscriber, args=(config, sum(shares[:i]), n, ready, progress, results))
        for i, n in enumerate(shares)
        if n
    ]
    pubs = [
        ctx.Process(target=publisher, args=(config, i, start, pub_results))
        for i in range(config.publishers)
    ]
    for proc in subs + pubs:
        proc.start()
    try:
        for _ in subs:
            ready.get(timeout=2 * config.timeout)
        began = time.monotonic_ns()
        start.set()
        expected = config.publishers * config.count * config.subscribers
        pub_outcomes = []
        while len(pub_outcomes) < len(pubs):
            with contextlib.suppress(queue.Empty):
                pub_outcomes.append(pub_results.get(timeout=0.25))
            if show_progress:
                _show(progress["received"].value, expected, began)
        progress["done"].value = 1
        sub_outcomes = [results.get(timeout=600) for _ in subs]
        for proc in subs + pubs:
            proc.join(10)
    finally:
        for proc in subs + pubs:
            if proc.is_alive():
                proc.kill()
    if show_progress:
        sys.stderr.write("\n")
    return _summarise(config, began, pub_outcomes, sub_outcomes)


def _show(received: int, expected: int, began_ns: int) -> None:
    elapsed = max(1e-9, (time.monotonic_ns() - began_ns) / 1e9)
    if not expected:  # no subscribers: nothing to count here
        sys.stderr.write(f"\rpublishing ... {elapsed:6.1f} s")
        sys.stderr.flush()
        return
    fraction = min(1.0, received / expected) if expected > 0 else 0.0
    bar = "#" * int(fraction * 30)
    sys.stderr.write(
        f"\r[{bar:<30}] {fraction * 100:5.1f}%  {received:>12,} received  "
        f"{received / elapsed:>11,.0f} deliveries/s"
    )
    sys.stderr.flush()


def _summarise(config: BenchConfig, began_ns: int, pubs: list, subs: list) -> dict[str, Any]:
    """The figures. ``start_ns`` and ``end_ns`` (``time.monotonic_ns``, one clock for
    the whole machine) are when the publishers were started and when the last one was
    done, acknowledgements included: with ``--subscribers 0`` a subscriber outside the
    bench times its receipts against them. Without subscribers, ``msgs_per_s`` is the
    publish rate (``published`` over ``publish_s``) and there is no latency."""
    published = sum(p["published"] for p in pubs)
    ended = max((p["end_ns"] for p in pubs), default=began_ns)
    publish_s = max(1e-9, (ended - began_ns) / 1e9)
    received = sum(s["received"] for s in subs)
    last = max((s["last_ns"] for s in subs if s["received"]), default=began_ns)
    duration = max(1e-9, (last - began_ns) / 1e9) if config.subscribers else publish_s
    latencies = sorted(x for s in subs for x in s["latencies_us"])
    expected = published * config.subscribers
    rate = received / config.subscribers if config.subscribers else published
    return {
        "config": asdict(config),
        "published": published,
        "sent": sum(p["sent"] for p in pubs),
        "acked": sum(p["acked"] for p in pubs) if config.ack != "none" else None,
        "failed": sum(p["failed"] for p in pubs),
        "received": received,
        "expected": expected,
        "lost": max(0, expected - received),
        "gaps": sum(s["gaps"] for s in subs),
        "duplicates": sum(s["duplicates"] for s in subs),
        "start_ns": began_ns,
        "end_ns": ended,
        "publish_s": round(publish_s, 4),
        "duration_s": round(duration, 4),
        "msgs_per_s": round(rate / duration, 1),
        "deliveries_per_s": round(received / duration, 1),
        "mb_per_s": round(received * config.size / duration / 1e6, 2),
        "latency_us": {
            name: _percentile(latencies, q)
            for name, q in (("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9), ("max", 100))
        },
    }


def _percentile(values: list[float], q: float) -> float | None:
    """Nearest rank, rounded to 0.1 µs; None without a sample (no subscriber, or none
    received)."""
    if not values:
        return None
    index = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return round(values[index], 1)


def table(result: dict[str, Any]) -> str:
    """The human-readable summary printed by ``zdps bench``."""
    c, lat = result["config"], result["latency_us"]
    head = (
        f"zdps bench: {c['publishers']} publisher(s) -> {c['subscribers']} subscriber(s), "
        f"topic {c['topic']!r}, {c['size']} B, "
        + (f"rate {c['rate']:,.0f}/s per publisher" if c["rate"] else "max rate")
    )
    if not c["subscribers"]:
        acked = "n/a (--ack none)" if result["acked"] is None else f"{result['acked']:,}"
        return "\n".join(
            [
                head,
                "",
                f"  {'published/s':<18}{result['msgs_per_s']:>14,.0f}",
                f"  {'sent':<18}{result['sent']:>14,}",
                f"  {'acknowledged':<18}{acked:>14}",
                f"  {'failed':<18}{result['failed']:>14,}",
                f"  {'publishing took':<18}{result['publish_s']:>13,.3f}s",
            ]
        )
    lines = [
        head,
        "",
        f"  {'messages/s':<18}{result['msgs_per_s']:>14,.0f}",
        f"  {'deliveries/s':<18}{result['deliveries_per_s']:>14,.0f}",
        f"  {'MB/s (payload)':<18}{result['mb_per_s']:>14,.2f}",
        f"  {'published':<18}{result['published']:>14,}",
        f"  {'received':<18}{result['received']:>14,}",
        f"  {'lost':<18}{result['lost']:>14,}",
        f"  {'gaps / dups':<18}{result['gaps']:>7,} / {result['duplicates']:,}",
        f"  {'duration':<18}{result['duration_s']:>13,.3f}s",
        "",
        "  one-way latency (us)   p50      p90      p99    p99.9      max",
        "  "
        + " " * 19
        + "".join(
            f"{lat[k]:>9,.0f}" if lat[k] is not None else f"{'-':>9}"
            for k in ("p50", "p90", "p99", "p99.9", "max")
        ),
    ]
    return "\n".join(lines)
