"""A saturated node holds client publishes but answers other clients' requests
(zdps/core/clients.py, docs/PROTOCOL.md §7.7): `zdps status` never waits for the
saturation to end, and each client's frames keep their order."""

from __future__ import annotations

import pytest

from zdps.core import clients
from zdps.core.node import NodeCore
from zdps.wire.api import Status, encode_publish, encode_request, publish_entry

pytestmark = pytest.mark.timeout(60)


def saturated_node() -> NodeCore:
    core = NodeCore("a", 1, "default", "tcp://127.0.0.1:1", [], 0.0)
    core.flow.inflight["b"] = core.flow.window + 1  # peer b confirms nothing
    assert core.paused
    return core


def kinds(frames: list) -> list:
    return [(frame[0], frame[1] if frame[0] == "rep" else frame[1][0][0]) for frame in frames]


def test_publishes_are_held_requests_of_others_answered_and_order_kept() -> None:
    core = saturated_node()
    core.on_client_frame(b"X", encode_publish([publish_entry(1, "t", [b"m"], 1)]), 0.1)
    core.on_client_frame(b"X", encode_request(2, Status()), 0.1)  # behind X's publish
    core.on_client_frame(b"Y", encode_request(3, Status()), 0.1)
    out = core.take(0.1)
    assert kinds(out.clients[b"Y"]) == [("rep", 3)] and b"X" not in out.clients
    assert core.status(0.1)["held"]["frames"] == 2 and core.counters["held"] == 2
    core.take(0.2)  # still saturated: nothing goes on
    assert len(core.clients.held) == 2

    core.flow.inflight["b"] = 0  # b confirmed
    out = core.take(0.3)
    assert kinds(out.clients[b"X"]) == [("ack", 1), ("rep", 2)]
    assert core.status(0.3)["held"] == {"frames": 0, "bytes": 0}


def test_the_io_layer_stops_reading_clients_only_at_the_hold_limit(monkeypatch) -> None:
    monkeypatch.setattr(clients, "HOLD_BYTES", 1000)
    core = saturated_node()
    frame = encode_publish([publish_entry(0, "t", [b"x" * 300], 1)])
    for _ in range(3):
        core.on_client_frame(b"X", frame, 0.1)
        assert not core.clients_held_full
    core.on_client_frame(b"X", frame, 0.1)
    assert core.clients_held_full
    core.flow.inflight["b"] = 0
    core.take(0.2)
    assert not core.clients_held_full and core.counters["published"] == 4


def test_a_publish_frame_is_recognised_undecoded() -> None:
    """Held frames stay undecoded (a frame of tiny entries decodes to tens of times its
    size): a publish is told by how its frame starts, for this protocol version."""
    frame = encode_publish([publish_entry(1, "t", [b"m"], 1)])
    assert frame[:6] == clients.PUBLISH_START
    assert encode_request(1, Status())[:6] != clients.PUBLISH_START
