"""The batch PUB through real daemons (docs/PROTOCOL.md §9.5): batch-aware and raw
subscribers side by side, what each PUB puts on the wire, recovery of a batch
subscription from history, ``topic delete``, and ``recv`` against ``recv_batch``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from tests.cluster.harness import Cluster, NodeProc, wait_for
from zdps import AsyncClient, Batch, Client, Gap, Message
from zdps.client import sync
from zdps.core.ring import HashRing
from zdps.core.routing import JOIN_BELOW
from zdps.wire.batches import unpack_batch
from zdps.wire.codec import unpack
from zdps.wire.delivery import decode_batch_header, decode_header

pytestmark = pytest.mark.timeout(120)

Item = Batch | Message | Gap


def owned_by_b(prefix: str = "batched-") -> str:
    ring = HashRing(["A", "B", "C"])
    return next(t for i in range(10_000) if ring.owner(t := f"{prefix}{i}") == "B")


def payloads(count: int, first: int = 0, size: int = 0) -> list[bytes]:
    return [f"m{i}".encode().ljust(size, b".") for i in range(first, first + count)]


def publish(node: NodeProc, topic: str, data: list[bytes], batch: int) -> None:
    """Publish ``data`` in order, ``batch`` messages per batch, every one acknowledged."""
    with node.client(timeout=30) as client:
        result = client.publish_stream(((topic, d) for d in data), batch=batch)
    assert result.acked == len(data) and not result.failures, result.failures[:3]


def expand(items: list[Item]) -> list[Message | Gap]:
    return [m for item in items for m in (item.messages() if type(item) is Batch else [item])]


def read(subscription: Any, count: int, whole: bool, timeout: float = 30) -> list[Item]:
    """Deliveries until ``count`` messages and gaps, with ``recv_batch`` if ``whole``."""
    got: list[Item] = []
    deadline = time.monotonic() + timeout
    recv = subscription.recv_batch if whole else subscription.recv
    while len(expand(got)) < count:
        assert time.monotonic() < deadline, f"only {len(expand(got))} of {count}: {got[-3:]}"
        item = recv(timeout=0.2)
        if item is not None:
            got.append(item)
    assert len(expand(got)) == count, got[-3:]
    return got


def in_order(items: list[Message | Gap], topic: str, data: list[bytes], first: int = 1) -> None:
    """``items`` are the messages ``data`` of ``topic``, seqs from ``first``, one epoch."""
    assert all(type(m) is Message for m in items), [m for m in items if type(m) is not Message]
    assert [m.seq for m in items] == list(range(first, first + len(data)))
    assert [m.data for m in items] == data
    assert {m.topic for m in items} == {topic}
    assert len({m.epoch for m in items}) == 1


def drain(subscription: Any, whole: bool = False, timeout: float = 30) -> list[Any]:
    """Every delivery until the subscription ends (``recv`` or ``recv_batch`` is None)."""
    got: list[Item] = []
    deadline = time.monotonic() + timeout
    recv = subscription.recv_batch if whole else subscription.recv
    while not subscription.ended:
        assert time.monotonic() < deadline, f"not ended after {len(expand(got))} messages"
        item = recv(timeout=0.2)
        if item is not None:
            got.append(item)
    return got


def wait_subscribers(owner: NodeProc, topic: str, nodes: dict[str, int]) -> None:
    wait_for(lambda: owner.members(topic)["nodes"] == nodes, 10, f"{topic} to reach {nodes}")


def raw_sub(endpoint: str, *subscriptions: bytes) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.connect(endpoint)
    for subscription in subscriptions:
        sock.subscribe(subscription)
    return sock


def recv_until_closed(sock: zmq.Socket, is_closed: Any, timeout: float = 30) -> list[list[bytes]]:
    """Every multipart message up to and including the first ``is_closed`` one."""
    got: list[list[bytes]] = []
    deadline = time.monotonic() + timeout
    while not got or not is_closed(got[-1]):
        left = deadline - time.monotonic()
        assert left > 0 and sock.poll(int(left * 1000)), f"no closed after {len(got)} messages"
        got.append(sock.recv_multipart())
    return got


# ---------------------------------------------------------------------- end to end


def test_batch_and_raw_subscribers_on_one_node_get_every_message_in_order(
    cluster: Cluster,
) -> None:
    a, b, c = cluster.three()
    for node in (a, b, c):
        with node.client() as client:
            assert client.info()["endpoints"]["batch_pub"] == node.batch_pub
    topic = owned_by_b()
    data = payloads(1000)
    with c.client() as client:
        batched = client.subscribe(topic, batches=True)
        raw = client.subscribe(topic)
        assert b.members(topic)["nodes"] == {"C": 2}
        publish(a, topic, data, batch=50)
        whole = read(batched, len(data), whole=True)
        singles = read(raw, len(data), whole=False)
        batched.close()
        raw.close()
    in_order(expand(whole), topic, data)
    in_order(singles, topic, data)  # type: ignore[arg-type]
    assert expand(whole) == singles
    # In order from the first: every delivery a whole batch, as the owner sequenced it.
    assert all(type(item) is Batch for item in whole), whole
    assert max(len(item.payloads) for item in whole) > 1  # type: ignore[union-attr]
    # Published 50 at a time; the entry node may join batches that continue each other
    # (docs/PROTOCOL.md §7.1), never splits one.
    sizes = [len(item.payloads) for item in whole]  # type: ignore[union-attr]
    assert all(size % 50 == 0 and size < JOIN_BELOW for size in sizes), sizes
    assert c.counters()["delivered"] == len(data)
    assert b.counters()["fanout_sent"] == len(data)  # one copy to C for both


def test_raw_pub_sends_only_messages_and_batch_pub_only_batches(cluster: Cluster) -> None:
    """A raw SUB on the firehose (``b""``) of the raw PUB and one on the batch PUB, next
    to a batch-aware client: each PUB's frames are its own format, ``closed`` on both."""
    a, b, c = cluster.three()
    topic = owned_by_b()
    data = payloads(600)
    firehose = raw_sub(c.pub, b"")
    batch_frames = raw_sub(c.batch_pub, topic.encode() + b"\x00")
    try:
        wait_subscribers(b, topic, {"C": 2})  # raw SUBs have no confirmation handshake
        with c.client() as client, client.subscribe(topic, batches=True) as batched:
            assert b.members(topic)["nodes"] == {"C": 3}
            publish(a, topic, data, batch=40)
            with a.client() as deleter:
                deleter.delete_topic(topic)
            in_order(drain(batched), topic, data)
            assert batched.ended
            plain = recv_until_closed(firehose, lambda f: unpack(f[1]).get("type") == "closed")
            whole = recv_until_closed(
                batch_frames, lambda f: decode_batch_header(f[1])[3] != "message"
            )
    finally:
        firehose.close()
        batch_frames.close()

    # The raw PUB: three frames a message, a message header each, never a batch.
    assert all(len(frames) == 3 for frames in plain)
    assert {frames[0] for frames in plain} == {topic.encode() + b"\x00"}
    headers = [unpack(frames[1]) for frames in plain]
    assert all(set(h) <= {"seq", "epoch", "type"} for h in headers), headers[:3]
    kinds = [decode_header(frames[1]) for frames in plain]
    assert [seq for seq, _, _ in kinds[:-1]] == list(range(1, len(data) + 1))
    assert [kind for _, _, kind in kinds] == ["message"] * len(data) + ["closed"]
    assert [frames[2] for frames in plain] == [*data, b""]

    # The batch PUB: three frames a batch, its header and blob; closed with n 0.
    assert all(len(frames) == 3 for frames in whole)
    assert {frames[0] for frames in whole} == {topic.encode() + b"\x00"}
    decoded = [decode_batch_header(frames[1]) for frames in whole]
    *batches, (_, _, n_closed, kind_closed) = decoded
    assert (n_closed, kind_closed, whole[-1][2]) == (0, "closed", b"")
    assert all(kind == "message" and n >= 1 for _, _, n, kind in batches)
    assert len(batches) < len(data)  # far fewer deliveries than messages
    expected_seq = 1
    got: list[bytes] = []
    for (seq, epoch, n, _), frames in zip(batches, whole, strict=False):
        assert seq == expected_seq and epoch == kinds[0][1]
        got += unpack_batch(frames[2], n)
        expected_seq += n
    assert got == data


def test_topic_delete_ends_a_batch_subscription(cluster: Cluster) -> None:
    a, _b, c = cluster.three()
    topic = owned_by_b()
    data = payloads(120)
    with c.client() as client:
        batched = client.subscribe(topic, batches=True)
        publish(a, topic, data, batch=30)
        deleted = cluster.run("topic", "delete", topic, "--node", a.api)
        assert deleted.returncode == 0, deleted.stderr
        got = drain(batched, whole=True)
        assert batched.ended
        assert batched.recv_batch(timeout=0.1) is None  # and stays ended
        assert batched.recv(timeout=0.1) is None
        batched.close()
    in_order(expand(got), topic, data)
    assert any(type(item) is Batch for item in got)


# ---------------------------------------------------------------------- recovery


def test_a_batch_subscription_since_replays_then_takes_batches(cluster: Cluster) -> None:
    a, _b, c = cluster.three()
    topic = owned_by_b()
    before, after = payloads(30), payloads(40, first=30)
    publish(a, topic, before, batch=10)
    with c.client() as client, client.subscribe(topic, batches=True, since=1) as batched:
        replayed = read(batched, len(before), whole=True)
        assert all(type(item) is Message for item in replayed)  # from history, one by one
        publish(a, topic, after, batch=10)
        live = read(batched, len(after), whole=True)
    in_order(expand(replayed + live), topic, before + after)
    assert all(type(item) is Batch for item in live)  # following on: whole again


@pytest.fixture
def tiny_receive_buffer(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Subscriptions made now get a 4 KiB kernel receive buffer on their SUB, so that
    what the node sends them, unread, stops in its own bounded queues and is dropped."""
    opened = sync.open_sub

    def open_sub(ctx: zmq.Context, rcvhwm: int, curve: Any = None) -> zmq.Socket:
        sock = opened(ctx, rcvhwm, curve)
        sock.setsockopt(zmq.RCVBUF, 4096)
        return sock

    monkeypatch.setattr(sync, "open_sub", open_sub)
    yield


def test_a_batch_subscription_recovers_dropped_batches_from_history(
    cluster: Cluster, tiny_receive_buffer: None
) -> None:
    """C queues one message for each subscriber (``pub_hwm`` 1) and the subscriber one
    batch (``rcvhwm`` 1) in a small socket buffer; 16 MB published while it does not read
    cannot fit, so C drops batches, and the subscription fetches them from history."""
    a = cluster.start("A", history=10_000)
    b = cluster.start("B", seeds=[a], history=10_000)
    c = cluster.start("C", seeds=[a], history=10_000, pub_hwm=1)
    cluster.wait_mesh()
    topic = owned_by_b()
    data = payloads(2000, size=8192)
    with c.client(timeout=30) as client, client.subscribe(topic, batches=True, rcvhwm=1) as batched:
        served = sum(node.counters()["history_served"] for node in (a, b, c))
        publish(a, topic, data, batch=8)
        wait_for(lambda: c.counters()["delivered"] >= len(data), 60, "C to deliver them all")
        # Read everything; when nothing more comes, the tail may have been dropped: a
        # message more (published once the queues are empty) shows the gap before it.
        got: list[Item] = []
        deadline = time.monotonic() + 60
        while len(expand(got)) < len(data):
            assert time.monotonic() < deadline, f"{len(expand(got))} of {len(data)}"
            item = batched.recv_batch(timeout=1.0)
            if item is None:
                more = payloads(1, first=len(data), size=8192)
                publish(a, topic, more, batch=1)
                data += more
            else:
                got.append(item)
    in_order(expand(got), topic, data)  # no gap: history held everything dropped
    assert any(type(item) is Message for item in got)  # taken one by one: recovered
    assert any(type(item) is Batch for item in got)
    assert sum(node.counters()["history_served"] for node in (a, b, c)) > served
    assert c.counters()["subscriber_queue_full"] >= 1  # C knows it dropped some


# ---------------------------------------------------------------------- recv and recv_batch


def test_recv_and_recv_batch_agree_on_the_same_data(cluster: Cluster) -> None:
    a, _b, c = cluster.three()
    topic = owned_by_b()
    data = payloads(500)
    with c.client() as client:
        singles = client.subscribe(topic, batches=True)
        wholes = client.subscribe(topic, batches=True)
        mixed = client.subscribe(topic, batches=True)
        raw = client.subscribe(topic)
        publish(a, topic, data[:300], batch=37)
        with a.client() as publisher:  # batches of one too
            for payload in data[300:320]:
                publisher.publish(topic, payload)
        publish(a, topic, data[320:], batch=64)
        got_singles = read(singles, len(data), whole=False)
        got_wholes = read(wholes, len(data), whole=True)
        got_raw = read(raw, len(data), whole=False)
        got_mixed: list[Item] = []
        deadline = time.monotonic() + 30
        while len(expand(got_mixed)) < len(data):  # alternating, a batch may be split
            assert time.monotonic() < deadline
            recv = mixed.recv_batch if len(got_mixed) % 2 else mixed.recv
            if (item := recv(timeout=0.2)) is not None:
                got_mixed.append(item)
        for subscription in (singles, wholes, mixed, raw):
            subscription.close()
    in_order(got_singles, topic, data)  # type: ignore[arg-type]
    assert all(type(item) is Message for item in got_singles)
    assert expand(got_wholes) == got_singles == got_raw == expand(got_mixed)
    assert any(type(item) is Batch and len(item.payloads) > 1 for item in got_wholes)


def test_async_batch_subscription_recv_batch_and_delete(cluster: Cluster) -> None:
    a, _b, c = cluster.three()
    topic = owned_by_b()
    data = payloads(200)

    async def scenario() -> tuple[list[Item], list[Item]]:
        async with AsyncClient(c.api) as client, AsyncClient(a.api) as publisher:
            wholes = await client.subscribe(topic, batches=True)
            singles = await client.subscribe(topic, batches=True)
            async for _ in publisher.publish_many(((topic, d) for d in data), batch=25):
                pass
            await publisher.delete_topic(topic)
            got_wholes: list[Item] = []
            while (item := await asyncio.wait_for(wholes.recv_batch(), 10)) is not None:
                got_wholes.append(item)
            got_singles: list[Item] = []
            while (item := await asyncio.wait_for(singles.recv(), 10)) is not None:
                got_singles.append(item)
            assert wholes.ended and singles.ended
            wholes.close()
            singles.close()
            return got_wholes, got_singles

    got_wholes, got_singles = asyncio.run(scenario())
    in_order(expand(got_wholes), topic, data)
    assert expand(got_wholes) == got_singles
    assert any(type(item) is Batch for item in got_wholes)


def test_a_client_subscription_is_ready_on_the_batch_pub(cluster: Cluster) -> None:
    """``subscribe(..., batches=True)`` returns once the owner knows it, like any other:
    the very next publish, from another node, arrives."""
    a, _b, c = cluster.three()
    with Client(a.api) as publisher, Client(c.api) as subscriber:
        for i in range(10):
            topic = owned_by_b(f"ready-{i}-")
            with subscriber.subscribe(topic, batches=True) as batched:
                assert publisher.publish(topic, b"first").subscribers == 1
                got = batched.recv_batch(5)
                assert type(got) is Batch, got
                assert (got.topic, got.seq, got.payloads) == (topic, 1, [b"first"])


def test_a_raw_subscriber_that_comes_later_gets_what_follows(cluster: Cluster) -> None:
    """The node expands batches on the raw PUB only while a raw SUB wants the topic: one
    that subscribes (or subscribes again) after batches went out unexpanded gets every
    message published from then on."""
    a, _b, c = cluster.three()
    topic = owned_by_b()
    data = payloads(90)
    with c.client() as client, client.subscribe(topic, batches=True) as batched:
        publish(a, topic, data[:30], batch=10)  # no raw subscriber yet
        for first in (30, 60):
            with client.subscribe(topic) as raw:
                publish(a, topic, data[first : first + 30], batch=10)
                in_order(read(raw, 30, whole=False), topic, data[first : first + 30], first + 1)  # type: ignore[arg-type]
        in_order(expand(read(batched, len(data), whole=True)), topic, data)
