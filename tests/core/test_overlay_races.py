"""Races on the scope overlay's links that pg_SUITE has no case for (zdps's own).

* pg ignores join/leave from a peer not in the overlay: an update still in flight
  when a node dropped its sender (a flapping peer) leaves no ghost member.
* Syncs and updates held on one link apply in FIFO order, each to the state the
  ones before it left.
"""

from __future__ import annotations

import pytest

from tests.core.overlay_net import OverlayNet, group
from zdps.wire import SYNC, UPDATE

pytestmark = pytest.mark.timeout(60)


def test_update_after_one_sided_peer_down_is_ignored() -> None:
    """pg ignores join/leave from a peer not in the overlay (flapping nodes)."""
    net = OverlayNet("a", "b")
    net.connect("a", "b")
    g = group("g")
    net.join("b", g)
    net.run()
    net.join("b", g)  # in flight to a ...
    net.peer_down("a", "b")  # ... when a drops b, but the link still delivers
    assert net["a"].members(g) == {}
    net.run()
    assert net["a"].members(g) == {}  # no ghost from the late update
    assert net["a"].ignored == 1
    net.disconnect("a", "b")
    net.connect("a", "b")
    net.run()
    assert net["a"].members(g) == {"b": 2}


def test_sync_and_updates_in_flight_apply_in_order() -> None:
    """Held sync and updates on one link apply in FIFO order, each to the right state."""
    net = OverlayNet("a", "b")
    g, h = group("g"), group("h")
    net.join("a", g)
    net.connect("a", "b")
    net.hold("a", "b")
    net.join("a", h, 2)
    net.peer_up("a", "b")  # a forced resync, queued behind the update
    net.leave("a", g)
    net.join("b", g)  # the other direction is not held
    assert net.run() == 2  # b's sync and b's update reach a
    assert net["a"].members(g) == {"b": 1}
    assert net["b"].which_groups() == {g}
    assert net.in_flight("a", "b") == [
        [SYNC, {g: 1}],
        [UPDATE, {h: 2}],
        [SYNC, {g: 1, h: 2}],
        [UPDATE, {g: 0}],
    ]
    seen = []
    while net.in_flight("a", "b"):
        net.deliver("a", "b")
        seen.append(net.table("b"))
    assert seen == [
        {g: {"a": 1, "b": 1}},
        {g: {"a": 1, "b": 1}, h: {"a": 2}},
        {g: {"a": 1, "b": 1}, h: {"a": 2}},
        {g: {"b": 1}, h: {"a": 2}},
    ]
    net.release("a", "b")
    assert net.run() == 0
