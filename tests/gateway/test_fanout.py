"""The fan-out: sockets grouped by the push they get, one frame per group, written as is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.protocol import SERVER, Protocol, State
from websockets.server import ServerProtocol

from zdps.gateway.fanout import Feed, wire_frame
from zdps.gateway.phoenix import PhoenixSocket
from zdps.gateway.recovery import Recovery

pytestmark = pytest.mark.timeout(60)


@dataclass
class Transport:
    buffered: int = 0
    written: list[bytes] = field(default_factory=list)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def write(self, data: bytes) -> None:
        self.written.append(data)


@dataclass(eq=False)
class Socket:
    """What the fan-out uses of a websockets ServerConnection."""

    transport: Transport = field(default_factory=Transport)
    protocol: Any = None

    def __post_init__(self) -> None:
        self.protocol = Protocol(SERVER, state=State.OPEN)


def joined(topic: str, join_ref: str, positioned: bool = False) -> PhoenixSocket:
    sock = PhoenixSocket()
    sock.channels[topic] = join_ref
    if positioned:
        sock.positioned.add(topic)
    return sock


@pytest.mark.parametrize("message", ["caf\u00e9 " * 40, "x" * 70_000, b"\x00\xff" * 100])
def test_a_wire_frame_is_what_websockets_writes_itself(message: str | bytes) -> None:
    server = ServerProtocol(state=State.OPEN)
    if isinstance(message, str):
        server.send_text(message.encode())
    else:
        server.send_binary(message)
    assert wire_frame(message) == b"".join(server.data_to_send())


def test_one_frame_per_group_and_a_write_per_socket() -> None:
    feed, made = Feed(), []
    sockets = [Socket() for _ in range(5)]
    for i, ws in enumerate(sockets):
        ref = "1" if i < 3 else "7"
        feed.add(ws, joined("t", ref), (ref, False), None)

    def frame_for(channel: tuple[str, bool]) -> bytes:
        made.append(channel)
        return channel[0].encode()

    assert feed.push(frame_for, 1000) == (5, [])
    assert sorted(made) == [("1", False), ("7", False)]
    assert [ws.transport.written for ws in sockets] == [[b"1"]] * 3 + [[b"7"]] * 2


def test_a_socket_over_its_send_buffer_is_named_and_not_written() -> None:
    feed, fast, slow = Feed(), Socket(), Socket(Transport(buffered=5000))
    for ws in (fast, slow):
        feed.add(ws, joined("t", "1"), ("1", False), None)
    assert feed.push(lambda channel: b"m", 4096) == (1, [slow])
    assert slow.transport.written == [] and fast.transport.written == [b"m"]


def test_a_closing_socket_is_skipped_and_a_group_without_a_frame_gets_nothing() -> None:
    feed, closing, other = Feed(), Socket(), Socket()
    closing.protocol.state = State.CLOSING
    feed.add(closing, joined("t", "1"), ("1", False), None)
    feed.add(other, joined("t", "2"), ("2", False), None)
    assert feed.push(lambda channel: None if channel[0] == "2" else b"m", 10) == (0, [])
    assert closing.transport.written == other.transport.written == []


def test_a_recovering_socket_is_live_once_caught_up_under_its_current_channel() -> None:
    feed, ws = Feed(), Socket()
    sock = joined("t", "1", positioned=True)
    recovery = Recovery("t", (1, 0))
    feed.add(ws, sock, ("1", True), recovery)
    assert feed.groups == {} and feed.catching == {ws: recovery}
    sock.channels["t"] = "4"  # rejoined meanwhile, not positioned
    sock.positioned.clear()
    feed.caught_up(ws, recovery)
    assert feed.groups == {("4", False): {ws: None}} and feed.catching == {}


def test_an_older_recovery_ending_leaves_a_newer_one_alone() -> None:
    feed, ws = Feed(), Socket()
    sock = joined("t", "1", positioned=True)
    old, new = Recovery("t", (1, 0)), Recovery("t", (1, 5))
    feed.add(ws, sock, ("1", True), old)
    feed.add(ws, sock, ("1", True), new)
    feed.caught_up(ws, old)
    assert feed.catching == {ws: new} and feed.groups == {}


OPS = st.lists(
    st.tuples(
        st.sampled_from(["join", "recover", "caught_up", "remove"]),
        st.integers(0, 3),
        st.sampled_from(["1", "2", "3"]),
    ),
    max_size=40,
)


@given(OPS)
def test_every_socket_is_in_its_channel_s_group_or_recovering_never_both(ops: list) -> None:
    feed, sockets = Feed(), [Socket() for _ in range(4)]
    socks = [PhoenixSocket() for _ in range(4)]
    for op, i, ref in ops:
        ws, sock = sockets[i], socks[i]
        if op in ("join", "recover"):
            sock.channels["t"] = ref
            feed.add(ws, sock, (ref, False), Recovery("t", (0, 0)) if op == "recover" else None)
        elif op == "caught_up" and ws in feed.catching:
            feed.caught_up(ws, feed.catching[ws])
        elif op == "remove":
            sock.channels.pop("t", None)
            feed.remove(ws)
    grouped = [ws for group in feed.groups.values() for ws in group]
    assert len(grouped) == len(set(grouped)), "a socket in two groups"
    assert all(group for group in feed.groups.values()), "an empty group kept"
    assert set(grouped) | set(feed.catching) == set(feed.sockets)
    assert not set(grouped) & set(feed.catching)
    for (ref, _), group in feed.groups.items():
        assert all(feed.sockets[ws].channels["t"] == ref for ws in group)
