"""A large sync between real daemons goes in parts (docs/PROTOCOL.md §5): a node that
joins a peer holding more than SYNC_PART_GROUPS groups gets them all, none is lost, and
what it holds agrees with the peer's digest (no resync follows)."""

from __future__ import annotations

import pytest
import zmq

from tests.cluster.harness import Cluster, wait_for
from zdps.wire.gossip import SYNC_PART_GROUPS

pytestmark = pytest.mark.timeout(120)

TOPICS = [f"part-{i:05d}" for i in range(2 * SYNC_PART_GROUPS + 123)]  # three parts


def test_a_joining_node_gets_every_group_of_a_sync_in_parts(cluster: Cluster) -> None:
    a = cluster.start("A")
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SNDHWM, 0)  # every subscription reaches the node (libzmq 4064)
    sub.setsockopt(zmq.RCVTIMEO, 5000)
    try:
        sub.connect(a.pub)
        for topic in TOPICS:
            sub.subscribe(topic.encode() + b"\x00")
        wait_for(lambda: a.status()["groups"]["local"] == len(TOPICS), 30, "A's subscriptions")
        b = cluster.start("B", seeds=[a])
        wait_for(lambda: b.status()["groups"]["cluster"] == len(TOPICS), 30, "B to hold them all")
        held_at = b.status()["uptime_s"]
        # A few of A's pings: a digest that differed would have B ask for a resync.
        wait_for(lambda: b.status()["uptime_s"] > held_at + 1.0, 10, "five heartbeats more")
        counters = b.counters()
        assert counters["sync_parts_lost"] == 0 and counters["resyncs_asked"] == 0, counters
        with b.client() as client:
            assert client.publish(TOPICS[-1], b"last").subscribers == 1
        assert sub.recv_multipart()[::2] == [TOPICS[-1].encode() + b"\x00", b"last"]
    finally:
        sub.close()
        ctx.term()
