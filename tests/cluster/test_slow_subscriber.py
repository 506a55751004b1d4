"""A raw SUB that falls ``pub_hwm`` behind, through a real daemon (docs/FAILURES.md,
Overload): it loses messages at its own SUB only, the node counts and logs it
(``subscriber_queue_full``), and a SUB that keeps up on the same topic loses nothing."""

from __future__ import annotations

import time

import pytest
import zmq

from tests.cluster.harness import Cluster, NodeProc, wait_for
from zdps.wire.delivery import decode_header

pytestmark = pytest.mark.timeout(90)

TOPIC = "slow"
COUNT = 3000
SIZE = 8192  # 24 MB in all: more than the slow SUB's socket buffers can hold
BATCH = 20


def raw_sub(ctx: zmq.Context, node: NodeProc, rcvhwm: int, rcvbuf: int = -1) -> zmq.Socket:
    sock = ctx.socket(zmq.SUB)
    sock.rcvhwm = rcvhwm
    sock.rcvbuf = rcvbuf
    sock.connect(node.pub)
    sock.subscribe(TOPIC.encode() + b"\x00")
    return sock


def subscribed(node: NodeProc, socks: list[zmq.Socket]) -> None:
    """Publish a probe until every SUB has one (its subscription reached the node)."""
    waiting = set(socks)
    deadline = time.monotonic() + 20
    with node.client() as client:
        while waiting:
            assert time.monotonic() < deadline, "the SUBs' subscriptions reach the node"
            client.publish(TOPIC, b"probe")
            for sock in list(waiting):
                if sock.poll(100):
                    waiting.discard(sock)
    for sock in socks:
        while sock.poll(200):
            sock.recv_multipart()


def seqs(sock: zmq.Socket, idle: float, count: int = COUNT) -> list[int]:
    """The seqs of the data (not probes) the SUB has, up to ``count``, until nothing came
    for ``idle`` s."""
    got: list[int] = []
    while len(got) < count and sock.poll(int(idle * 1000)):
        _topic, header, payload = sock.recv_multipart()
        if payload != b"probe":
            got.append(decode_header(header)[0])
    return got


def test_a_slow_raw_subscriber_loses_messages_counted_and_the_other_none(
    cluster: Cluster,
) -> None:
    node = cluster.start("A", pub_hwm=1000, history=0)
    ctx = zmq.Context()
    try:
        fast = raw_sub(ctx, node, rcvhwm=0)
        slow = raw_sub(ctx, node, rcvhwm=10, rcvbuf=64 * 1024)
        subscribed(node, [fast, slow])
        assert node.counters()["subscriber_queue_full"] == 0
        got_fast = []
        with node.client(timeout=30) as client:
            for _ in range(COUNT // BATCH):  # in step with the fast SUB: it never lags
                messages = [(TOPIC, b"x" * SIZE)] * BATCH
                result = client.publish_stream(messages, batch=BATCH)
                assert result.acked == BATCH and not result.failures
                got_fast += seqs(fast, idle=10.0, count=BATCH)
        full = wait_for(
            lambda: node.counters()["subscriber_queue_full"], 20, "the node to count the loss"
        )
        got_slow = seqs(slow, idle=2.0)
    finally:
        ctx.destroy(0)
    first = got_fast[0]
    assert got_fast == list(range(first, first + COUNT)), "the SUB that keeps up gets all"
    assert len(got_slow) < COUNT, "the slow SUB lost messages"
    assert got_slow == sorted(got_slow) and got_slow[0] == first
    assert 1 <= full <= COUNT - len(got_slow), "each loss episode counts its first message"
    assert "subscriber_queue_full" in node.logs() and "pub_hwm=1000" in node.logs()
    assert f"topic={TOPIC}" in node.logs()
    status = node.status()
    lost = status["counters"]["subscriber_queue_full"]
    losses = status["subscriber_losses"]
    assert (losses["by_topic"], losses["other_topics"]) == ({TOPIC: lost}, 0)
    assert losses["by_subscriber"] == {}  # raw SUBs do not report
