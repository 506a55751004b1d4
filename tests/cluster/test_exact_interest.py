"""Local interest is exact: raw SUBs that subscribe twice, unsubscribe and disconnect
leave no ghost group, and a subscription the node refuses delivers nothing (§9.3)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import zmq

from tests.cluster.harness import Cluster, NodeProc, wait_for

pytestmark = pytest.mark.timeout(60)


@contextmanager
def raw_sub(node: NodeProc) -> Iterator[zmq.Socket]:
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SNDHWM, 0)
    sub.connect(node.pub)
    try:
        yield sub
    finally:
        sub.close(0)
        ctx.term()


def count(node: NodeProc, topic: str) -> int:
    return node.members(topic)["nodes"].get(node.node_id, 0)


def test_a_group_subscribed_twice_is_gone_when_its_sub_disconnects(cluster: Cluster) -> None:
    a = cluster.start("A")
    with raw_sub(a) as sub:
        sub.subscribe(b"ghost\x00")
        sub.subscribe(b"ghost\x00")  # libzmq reports both, and one unsubscribe at the end
        wait_for(lambda: count(a, "ghost") == 1, 5, "one connection counted once")
    wait_for(lambda: count(a, "ghost") == 0, 5, "the group to go with its SUB")
    assert a.status()["groups"]["local"] == 0


def test_undoing_a_duplicate_subscription_leaves_the_group(cluster: Cluster) -> None:
    a = cluster.start("A")
    with raw_sub(a) as twice, raw_sub(a) as once:
        for sock in (twice, twice, once):
            sock.subscribe(b"t\x00")
        wait_for(lambda: count(a, "t") == 2, 5, "two connections holding t")
        twice.unsubscribe(b"t\x00")
        twice.unsubscribe(b"t\x00")  # only this one reaches the node
        wait_for(lambda: count(a, "t") == 1, 5, "the first SUB's subscription undone")
        once.unsubscribe(b"t\x00")
        wait_for(lambda: count(a, "t") == 0, 5, "no subscriber left")


def test_a_subscription_past_max_subscriptions_delivers_nothing(cluster: Cluster) -> None:
    a = cluster.start("A", max_subscriptions=2)
    with raw_sub(a) as full, raw_sub(a) as other:
        for group in (b"one\x00", b"two\x00", b"three\x00"):
            full.subscribe(group)
        other.subscribe(b"three\x00")
        wait_for(lambda: count(a, "three") == 1, 5, "the other SUB's subscription")
        assert count(a, "one") == 1 and count(a, "two") == 1
        wait_for(lambda: a.status()["errors"].get("too_many_subscriptions") == 1, 5, "the count")
        assert "too_many_subscriptions" in a.logs()
        with a.client() as client:
            client.publish("three", b"not for the full SUB")
            client.publish("one", b"after it")
        assert other.poll(5000) and other.recv_multipart()[2] == b"not for the full SUB"
        assert full.poll(5000)
        topic, _header, payload = full.recv_multipart()
        assert (topic, payload) == (b"one\x00", b"after it")  # "three" never came before it
