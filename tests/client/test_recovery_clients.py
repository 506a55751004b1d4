"""Recovery in the clients against the fake node, with a PUB of the test's own: gaps
fetched page by page, epoch changes, failed fetches, ``since`` and ``recover=False``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import zmq

from tests.client.fake_node import FakeNode, answer
from tests.client.recovery_cases import Key, closed, gap, m, serve
from zdps import AsyncClient, Client
from zdps.client import recovery
from zdps.client.protocol import Message
from zdps.client.recovery import (
    FETCH_ATTEMPTS,
    Delivery,
)
from zdps.topics import exact_group
from zdps.wire import pack
from zdps.wire.limits import HISTORY_PAGE

pytestmark = pytest.mark.timeout(30)


# ---------------------------------------------------------------------- the clients


class Pub:
    """The fake node's PUB: an XPUB on its advertised endpoint, driven by the test."""

    def __init__(self, node: FakeNode) -> None:
        self.sock = node.ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(node.pub)

    def joined(self, group: bytes, timeout: float = 5.0) -> None:
        """Wait until a SUB subscribed to ``group`` (it is connected: nothing sent is lost)."""
        while self.sock.poll(int(timeout * 1000)):
            if self.sock.recv() == b"\x01" + group:
                return
        raise AssertionError(f"no subscription to {group!r}")

    def send(self, message: Message) -> None:
        header: dict[str, Any] = {"seq": message.seq, "epoch": message.epoch}
        if message.type != "message":
            header["type"] = message.type
        self.sock.send_multipart([message.topic.encode() + b"\x00", pack(header), message.data])

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def pub(node: FakeNode) -> Iterator[Pub]:
    fake = Pub(node)
    yield fake
    fake.close()


def history_node(
    held: list[Key], page: int = 2, fail: bool = False
) -> Callable[[FakeNode, bytes, list], None]:
    """A handler that answers ``history`` from ``held`` (or refuses it), else as a node."""

    def handler(node: FakeNode, client: bytes, msg: list) -> None:
        if msg[1] == "req" and msg[3] == "history":
            if fail:
                node.send(client, "rep", msg[2], False, {"code": "owner_lost", "message": "x"})
            else:
                node.send(client, "rep", msg[2], True, serve(held, msg[4], page))
        else:
            answer(node, client, msg)

    return handler


def history_args(node: FakeNode) -> list[dict]:
    return [request[4] for request in node.requests("history")]


def received(subscription: Any, n: int) -> list[Delivery]:
    out = []
    for _ in range(n):
        item = subscription.recv(timeout=5)
        assert item is not None, out
        out.append(item)
    return out


def test_a_client_fetches_a_gap_page_by_page(
    node: FakeNode, pub: Pub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recovery, "GAP_RECHECK", 0.01)
    node.handler = history_node([(1, k) for k in range(3, 9)], page=2)
    with Client(node.endpoint, timeout=3) as client, client.subscribe("t") as subscription:
        pub.joined(exact_group("t"))
        for key in [(1, 1), (1, 6), (1, 7)]:
            pub.send(m(*key))
        got = received(subscription, 7)
        assert subscription.recv(timeout=0.1) is None
    assert got == [m(1, 1), gap(1, 2, 2), m(1, 3), m(1, 4), m(1, 5), m(1, 6), m(1, 7)]
    pages = [
        {"topic": "t", "limit": HISTORY_PAGE, "after": [1, 1], "until": [1, 6]},
        {"topic": "t", "limit": HISTORY_PAGE, "after": [1, 4], "until": [1, 6]},
    ]
    assert history_args(node) == pages * 2  # (1, 2) is gone: asked again before reporting


def test_a_client_recovers_across_an_epoch_change(node: FakeNode, pub: Pub) -> None:
    node.handler = history_node([(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)], page=10)
    with Client(node.endpoint, timeout=3) as client, client.subscribe("t") as subscription:
        pub.joined(exact_group("t"))
        for key in [(1, 1), (2, 3), (1, 2)]:  # the last one is a late duplicate
            pub.send(m(*key))
        got = received(subscription, 6)
        assert subscription.recv(timeout=0.1) is None
    assert got == [m(1, 1), m(1, 2), m(1, 3), m(2, 1), m(2, 2), m(2, 3)]
    assert history_args(node) == [
        {"topic": "t", "limit": HISTORY_PAGE, "after": [1, 1], "until": [2, 3]}
    ]


def test_a_client_reports_a_failed_fetch_as_one_gap(
    node: FakeNode, pub: Pub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recovery, "FETCH_RETRY", 0.01)
    monkeypatch.setattr(recovery, "GAP_RECHECK", 0.01)
    node.handler = history_node([], fail=True)
    with Client(node.endpoint, timeout=3) as client, client.subscribe("t") as subscription:
        pub.joined(exact_group("t"))
        for key in [(1, 1), (1, 6), (1, 7)]:
            pub.send(m(*key))
        assert received(subscription, 4) == [m(1, 1), gap(1, 2, 5), m(1, 6), m(1, 7)]
    assert history_args(node) == [
        {"topic": "t", "limit": HISTORY_PAGE, "after": [1, 1], "until": [1, 6]}
    ] * (2 * FETCH_ATTEMPTS)  # every attempt, then every attempt once more before reporting


def test_since_replays_history_then_goes_live_without_duplicates(node: FakeNode, pub: Pub) -> None:
    node.handler = history_node([(1, 1), (1, 2), (2, 1), (2, 2), (2, 3)], page=1)
    with Client(node.endpoint, timeout=3) as client, client.subscribe("t", since=2) as subscription:
        pub.joined(exact_group("t"))
        for key in [(2, 2), (2, 3), (2, 4)]:  # published while it was replaying
            pub.send(m(*key))
        got = received(subscription, 3)
        assert subscription.recv(timeout=0.1) is None
    assert got == [m(2, 2), m(2, 3), m(2, 4)]
    assert history_args(node) == [
        {"topic": "t", "limit": HISTORY_PAGE, "since": 2},  # from seq 2 of the newest epoch
        {"topic": "t", "limit": HISTORY_PAGE, "after": [2, 2]},
    ]


def test_without_recover_messages_come_raw(node: FakeNode, pub: Pub) -> None:
    node.handler = history_node([(1, k) for k in range(1, 9)])
    raw = [m(1, 1), m(1, 5), m(1, 5), m(1, 3), m(2, 1)]
    with Client(node.endpoint, timeout=3) as client, client.subscribe("t", recover=False) as sub:
        pub.joined(exact_group("t"))
        for message in raw:
            pub.send(message)
        assert received(sub, len(raw)) == raw
        pub.send(closed(2, 2))
        assert sub.recv(timeout=5) is None and sub.ended
    assert history_args(node) == []


def test_an_async_client_fetches_a_gap_and_ends_on_closed(
    node: FakeNode, pub: Pub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recovery, "GAP_RECHECK", 0.01)
    node.handler = history_node([(1, 2), (1, 4), (2, 1)], page=1)

    async def scenario() -> list[Delivery]:
        async with AsyncClient(node.endpoint, timeout=3) as client:
            subscription = await client.subscribe("t")
            pub.joined(exact_group("t"))
            for message in [m(1, 1), m(2, 2), m(2, 3), closed(3, 1)]:
                pub.send(message)
            try:
                return [item async for item in subscription]
            finally:
                subscription.close()

    got = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert got == [m(1, 1), m(1, 2), gap(1, 3, 3), m(1, 4), m(2, 1), m(2, 2), m(2, 3)]
    # (1, 3) is gone: the range is asked again, page by page, before it is reported.
    assert [args["after"] for args in history_args(node)] == [[1, 1], [1, 2], [1, 4]] * 2
