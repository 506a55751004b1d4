"""Clusters of one kind against another in one run: the loop of bench/replication and
bench/curve. Each repetition runs every variant in turn (a flood and a paced run each),
so they share the machine's noise; the table gives medians and ratios to the first."""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peers import zdps_nodes


@dataclass(frozen=True)
class Variant:
    """One row: a cluster, and how ``zdps bench`` is run against it."""

    cluster: str  # a key of the clusters dict
    ack: str = "owner"
    batches: bool = False


def one(cluster: Any, topic: str, variant: Variant, log_dir: Path, **kind: Any) -> dict:
    """One ``zdps bench`` run: publisher on A, the subscriber on C."""
    return zdps_nodes.run_bench(
        pub_node=cluster.nodes["A"].api,
        sub_nodes=[cluster.nodes["C"].api],
        topic=topic,
        workload="side-by-side",
        size=64,
        timeout=300,
        log_dir=log_dir,
        ack=variant.ack,
        batches=variant.batches,
        **kind,
    )


def compare(
    clusters: dict[str, Any],
    variants: dict[str, Variant],
    topic: str,
    *,
    reps: int,
    count: int,
    latency_rate: float,
    log_dir: Path,
) -> dict[str, dict[str, float]] | None:
    """Medians per variant (msg/s, p50 and p99 ms), printed as a table; None (and
    why, on stderr) if any run lost or failed a message."""
    results = {n: {"rate": [], "p50": [], "p99": []} for n in variants}
    for rep in range(reps):
        for name, variant in variants.items():
            cluster = clusters[variant.cluster]
            flood = one(cluster, topic, variant, log_dir, count=count)
            paced = one(cluster, topic, variant, log_dir, count=None, rate=latency_rate, duration=5)
            if flood["lost"] or flood["failed"] or paced["lost"] or paced["failed"]:
                print(f"{name}: lost or failed messages: {flood} {paced}", file=sys.stderr)
                return None
            result = results[name]
            result["rate"].append(flood["msgs_per_s"])
            result["p50"].append(paced["latency_us"]["p50"] / 1000)
            result["p99"].append(paced["latency_us"]["p99"] / 1000)
            print(
                f"rep {rep + 1} {name:13} {flood['msgs_per_s']:>9,.0f} msg/s   "
                f"p50 {result['p50'][-1]:.2f} ms  p99 {result['p99'][-1]:.2f} ms",
                flush=True,
            )
    median = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in results.items()}
    first = next(iter(variants))
    base = median[first]
    print(f"\nmedians of {reps}, 64 B, {count:,} messages; latency at {latency_rate:,.0f} msg/s")
    print(f"{'variant':13} {'msg/s':>9} {'÷ ' + first:>9} {'p50 ms':>7} {'p99 ms':>7} {'p50 ÷':>6}")
    for name, m in median.items():
        print(
            f"{name:13} {m['rate']:>9,.0f} {m['rate'] / base['rate']:>9.2f} {m['p50']:>7.2f} "
            f"{m['p99']:>7.2f} {m['p50'] / base['p50']:>6.2f}"
        )
    return median
