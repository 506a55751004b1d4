"""`zdps bench` end to end on a real three-node cluster (correctness only, not speed)."""

from __future__ import annotations

import json

import pytest

from tests.cluster.harness import Cluster
from zdps.core.ring import HashRing

pytestmark = pytest.mark.timeout(120)


def test_bench_reports_every_message_delivered_in_order(cluster: Cluster) -> None:
    a = cluster.start("A")
    cluster.start("B", seeds=[a])
    c = cluster.start("C", seeds=[a])
    cluster.wait_mesh()
    ring = HashRing(["A", "B", "C"])
    topic = next(t for i in range(1000) if ring.owner(t := f"bench-{i}") == "B")
    run = cluster.run(
        "bench",
        "--json",
        "--pub-node",
        a.api,
        "--sub-node",
        c.api,
        "--sub-node",
        a.api,
        "--topic",
        topic,
        "--count",
        "3000",
        "--subscribers",
        "2",
        "--publishers",
        "2",
        "--size",
        "100",
        timeout=100,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["published"] == 6000
    assert result["received"] == result["expected"] == 12000
    assert result["lost"] == result["gaps"] == result["duplicates"] == 0
    assert result["msgs_per_s"] > 0 and result["latency_us"]["p50"] > 0
    assert c.counters()["fanout_received"] == 6000


def test_bench_at_a_fixed_rate_keeps_the_rate(cluster: Cluster) -> None:
    a = cluster.start("A")
    run = cluster.run(
        "bench", "--json", "--node", a.api, "--count", "2000", "--rate", "2000", timeout=60
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["lost"] == 0
    assert 0.8 < result["duration_s"] < 3.0  # 2,000 messages at 2,000/s take about 1 s
