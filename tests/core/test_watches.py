"""Member watches (zdps/core/watches.py): ``zdps members --watch`` (docs/PROTOCOL.md §8.3).

* ``watch`` replies with the topic's members now, then pushes an ``event`` for every
  membership change of a group that matches the topic (exact or prefix), and only
  those, with ``event: {kind, group, prefix, node, count}``.
* A ring change pushes the members, without ``event``, to every watch.
* A ``watch`` with the ref of a live watch re-points it; ``unwatch`` answers whether
  the client had that watch; a client that is gone loses all its watches, and the
  overlay stops telling them anything.

Sans-IO: ``Watches`` over a real ``Overlay``, whose member events are handed to it as
``NodeCore`` does.
"""

from __future__ import annotations

import pytest

from zdps.core.outbox import Outbox
from zdps.core.overlay import MemberEvent, Overlay
from zdps.core.ring import HashRing
from zdps.core.watches import Watches
from zdps.topics import exact_group, prefix_group
from zdps.wire import API_EVENT, API_REPLY
from zdps.wire.gossip import Update

pytestmark = pytest.mark.timeout(30)

ALICE, BOB = b"alice", b"bob"


def watches() -> Watches:
    overlay = Overlay("a")
    overlay.peer_up("b")
    return Watches(HashRing("ab"), overlay)


def change(part: Watches, out: Outbox, actions: list) -> None:
    """Hand the overlay's member events to the watches, as the core does."""
    for action in actions:
        if isinstance(action, MemberEvent):
            part.on_member_event(action, out)


def events(out: Outbox, client: bytes) -> list[tuple[int, dict]]:
    return [(frame[1], frame[2]) for frame in out.clients.get(client, []) if frame[0] == API_EVENT]


def test_a_watch_replies_with_the_members_now() -> None:
    part, out = watches(), Outbox()
    change(part, out, part.overlay.handle("b", Update({exact_group("news.eu"): 2})))
    part.watch(ALICE, 5, "news.eu", out)
    owner = part.ring.owner("news.eu")
    assert out.clients[ALICE] == [
        [API_REPLY, 5, True, {"topic": "news.eu", "owner": owner, "nodes": {"b": 2}, "queues": {}}]
    ]
    assert len(part) == 1


def test_events_come_only_for_groups_that_match_the_topic() -> None:
    part, out = watches(), Outbox()
    part.watch(ALICE, 5, "news.eu", Outbox())
    change(part, out, part.overlay.join(exact_group("sports")))
    change(part, out, part.overlay.join(exact_group("news")))
    change(part, out, part.overlay.join(prefix_group("newsx")))
    assert events(out, ALICE) == []
    change(part, out, part.overlay.join(exact_group("news.eu")))
    change(part, out, part.overlay.handle("b", Update({prefix_group("news."): 3})))
    change(part, out, part.overlay.handle("b", Update({prefix_group("news."): 1})))
    owner = part.ring.owner("news.eu")
    assert events(out, ALICE) == [
        (5, {"topic": "news.eu", "owner": owner, "nodes": {"a": 1}, "queues": {}, "event": {
            "kind": "join", "group": "news.eu", "prefix": False, "node": "a", "count": 1}}),
        (5, {"topic": "news.eu", "owner": owner, "nodes": {"a": 1, "b": 3}, "queues": {}, "event": {
            "kind": "join", "group": "news.", "prefix": True, "node": "b", "count": 3}}),
        (5, {"topic": "news.eu", "owner": owner, "nodes": {"a": 1, "b": 1}, "queues": {}, "event": {
            "kind": "leave", "group": "news.", "prefix": True, "node": "b", "count": 2}}),
    ]  # fmt: skip


def test_a_ring_change_pushes_every_watch_without_an_event() -> None:
    part, out = watches(), Outbox()
    part.watch(ALICE, 5, "x", Outbox())
    part.watch(ALICE, 6, "y", Outbox())
    part.watch(BOB, 5, "x", Outbox())
    part.ring.add("c")
    part.ring_changed(frozenset("ab"), 1.0, out)
    owner = part.ring.owner
    assert events(out, ALICE) == [
        (5, {"topic": "x", "owner": owner("x"), "nodes": {}, "queues": {}}),
        (6, {"topic": "y", "owner": owner("y"), "nodes": {}, "queues": {}}),
    ]
    assert events(out, BOB) == [(5, {"topic": "x", "owner": owner("x"), "nodes": {}, "queues": {}})]


def test_watching_again_with_the_same_ref_re_points_the_watch() -> None:
    part, out = watches(), Outbox()
    part.watch(ALICE, 5, "x", Outbox())
    part.watch(ALICE, 5, "y", Outbox())
    change(part, out, part.overlay.join(exact_group("x")))
    assert events(out, ALICE) == []
    change(part, out, part.overlay.join(exact_group("y")))
    assert [body["topic"] for _, body in events(out, ALICE)] == ["y"]  # one monitor, not two
    assert len(part) == 1


def test_unwatch_answers_whether_the_client_had_that_watch() -> None:
    part, out = watches(), Outbox()
    part.watch(ALICE, 5, "x", Outbox())
    part.unwatch(BOB, 9, 5, out)  # not bob's
    part.unwatch(ALICE, 10, 5, out)
    part.unwatch(ALICE, 11, 5, out)
    assert out.clients[BOB] == [[API_REPLY, 9, True, False]]
    assert out.clients[ALICE] == [[API_REPLY, 10, True, True], [API_REPLY, 11, True, False]]
    change(part, out, part.overlay.join(exact_group("x")))
    assert events(out, ALICE) == []


def test_a_client_gone_is_demonitored() -> None:
    part, out = watches(), Outbox()
    part.watch(ALICE, 5, "x", Outbox())
    part.watch(ALICE, 6, "x", Outbox())
    part.watch(BOB, 5, "x", Outbox())
    part.client_gone(ALICE)
    assert len(part) == 1
    assert part.overlay.demonitor((ALICE, 5)) is False  # the overlay holds no watch of it
    assert part.overlay.demonitor((ALICE, 6)) is False
    actions = part.overlay.join(exact_group("x"))
    assert [e.watcher for e in actions if isinstance(e, MemberEvent)] == [(BOB, 5)]
    change(part, out, actions)
    assert events(out, ALICE) == [] and len(events(out, BOB)) == 1
