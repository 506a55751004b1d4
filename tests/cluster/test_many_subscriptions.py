"""Many topics subscribed at once, against a real node.

A SUB sends its subscriptions through its send queue, and libzmq drops those that find
the queue full (SNDHWM, 1000 by default), without an error; the SUB learns that the
queue emptied only when it is next read or polled, so subscribing more topics than
SNDHWM in one go loses the rest (README, docs/PROTOCOL.md §9.2; libzmq issue 4064).
The Python clients set SNDHWM 0 (no limit) on their SUB; a raw SUB must too.
"""

from __future__ import annotations

import asyncio

import pytest
import zmq

from tests.cluster.harness import Cluster, NodeProc, wait_for
from zdps import AsyncClient, Client

pytestmark = pytest.mark.timeout(60)

TOPICS = [f"many-{i:05d}" for i in range(3000)]
LAST = TOPICS[-1]


def _local_groups(node: NodeProc) -> int:
    return node.status()["groups"]["local"]


def test_the_client_subscribes_3000_topics_at_once(cluster: Cluster) -> None:
    node = cluster.start("solo")
    with Client(node.api) as client, client.subscribe(*TOPICS) as sub:
        assert _local_groups(node) == len(TOPICS)
        assert client.publish(LAST, b"last").subscribers == 1
        msg = sub.recv(timeout=5)
        assert msg is not None and (msg.topic, msg.data) == (LAST, b"last")


def test_the_async_client_subscribes_3000_topics_at_once(cluster: Cluster) -> None:
    node = cluster.start("solo")

    async def scenario() -> None:
        async with AsyncClient(node.api) as client:
            sub = await client.subscribe(*TOPICS)
            try:
                assert (await client.publish(LAST, b"last")).subscribers == 1
                msg = await asyncio.wait_for(sub.recv(), 5)
                assert msg is not None and (msg.topic, msg.data) == (LAST, b"last")
            finally:
                sub.close()

    asyncio.run(scenario())
    wait_for(lambda: _local_groups(node) == 0, 10, "the closed SUB's subscriptions to go")


def _raw_sub(ctx: zmq.Context, node: NodeProc, sndhwm: int | None) -> zmq.Socket:
    """A plain SUB on the node's PUB, with ``sndhwm`` set (None: libzmq's default)."""
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    if sndhwm is not None:
        sock.setsockopt(zmq.SNDHWM, sndhwm)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.connect(node.pub)
    return sock


def test_a_raw_sub_with_sndhwm_0_subscribes_3000_topics_at_once(cluster: Cluster) -> None:
    node = cluster.start("solo")
    ctx = zmq.Context()
    sock = _raw_sub(ctx, node, sndhwm=0)
    try:
        for topic in TOPICS:
            sock.subscribe(topic.encode() + b"\x00")
        wait_for(lambda: _local_groups(node) == len(TOPICS), 10, "every subscription at the node")
        with node.client() as client:
            assert client.publish(LAST, b"last").subscribers == 1
        assert sock.recv_multipart()[::2] == [LAST.encode() + b"\x00", b"last"]
    finally:
        sock.close()
        ctx.term()


def test_a_raw_sub_with_the_default_sndhwm_loses_subscriptions(cluster: Cluster) -> None:
    """What the docs warn of: beyond about SNDHWM (1000) at once, the rest are dropped."""
    node = cluster.start("solo")
    ctx = zmq.Context()
    sock = _raw_sub(ctx, node, sndhwm=None)
    assert sock.getsockopt(zmq.SNDHWM) == 1000
    marker = b"marker\x00"
    try:
        for topic in TOPICS:
            sock.subscribe(topic.encode() + b"\x00")

        def marker_seen() -> bool:
            """Once the marker, sent after them, is at the node, all that got through is."""
            sock.poll(0)  # the SUB learns what its send queue sent only when it is used
            sock.subscribe(marker)  # again until one finds room in the send queue
            with node.client() as client:
                return bool(client.members("marker")["nodes"])

        wait_for(marker_seen, 10, "the marker subscription at the node", interval=0.1)
        with node.client() as client:
            assert client.members(LAST)["nodes"] == {}
        groups = _local_groups(node) - 1  # less the marker
        assert 0 < groups < len(TOPICS) - 1000, groups
    finally:
        sock.close()
        ctx.term()
