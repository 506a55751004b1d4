"""`zdps bench` end to end on a real three-node cluster (correctness only, not speed)."""

from __future__ import annotations

import json

import msgpack
import pytest
import zmq

from tests.cluster.harness import Cluster, wait_for
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


def test_bench_without_subscribers_publishes_for_a_subscriber_outside_it(
    cluster: Cluster,
) -> None:
    """`--subscribers 0`: it only publishes, and says what was sent and acknowledged,
    and when (on the monotonic clock), for a raw SUB of someone else's."""
    a = cluster.start("A")
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(a.pub)
    sub.setsockopt(zmq.SUBSCRIBE, b"outside\x00")
    try:
        wait_for(lambda: a.members("outside")["nodes"].get("A"), 10, "the SUB's subscription")
        run = cluster.run(
            "bench", "--json", "--node", a.api, "--subscribers", "0", "--topic", "outside",
            "--count", "2000", timeout=60,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        result = json.loads(run.stdout)
        assert result["published"] == result["sent"] == result["acked"] == 2000
        assert result["failed"] == result["received"] == result["expected"] == 0
        assert result["lost"] == result["gaps"] == result["duplicates"] == 0
        assert result["msgs_per_s"] > 0 and result["start_ns"] < result["end_ns"]
        assert set(result["latency_us"].values()) == {None}
        seqs = []
        while len(seqs) < 2000 and sub.poll(5000):
            topic, header, payload = sub.recv_multipart()
            assert topic == b"outside\x00" and len(payload) == 64
            assert result["start_ns"] <= int.from_bytes(payload[:8], "little") <= result["end_ns"]
            seqs.append(msgpack.unpackb(header)["seq"])
        assert seqs == list(range(seqs[0], seqs[0] + 2000))

        fire = cluster.run(
            "bench", "--node", a.api, "--subscribers", "0", "--topic", "outside",
            "--count", "500", "--no-ack", timeout=60,
        )  # fmt: skip
        assert fire.returncode == 0, fire.stderr
        assert "published/s" in fire.stdout and "n/a (--ack none)" in fire.stdout
    finally:
        sub.close()
        ctx.term()
