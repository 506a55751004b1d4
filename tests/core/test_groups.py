"""Group membership glue (zdps/core/groups.py): subscriptions in, the overlay's news out.

Sans-IO: ``Groups`` over a real ``Overlay``, ``Barriers`` and ``Watches``, as
``NodeCore`` builds them.
"""

from __future__ import annotations

import pytest

from zdps.core.barrier import Barriers
from zdps.core.groups import Groups
from zdps.core.outbox import Outbox
from zdps.core.overlay import Overlay
from zdps.core.ring import HashRing
from zdps.core.scope_digests import sorted_digest
from zdps.core.watches import Watches
from zdps.topics import SYNC_PREFIX, exact_group, prefix_group
from zdps.wire import API_EVENT
from zdps.wire.gossip import Ping, Resync, Sync, Update

pytestmark = pytest.mark.timeout(30)


def endpoint(node: str) -> str:
    return f"inproc://{node}"


def groups() -> tuple[Groups, list[tuple[str, str]], dict[str, int]]:
    ring, overlay = HashRing("ab"), Overlay("a")
    overlay.peer_up("b")
    barriers = Barriers("a", ring, lambda: ["b"], endpoint)
    reports: list[tuple[str, str]] = []
    counters = {"resyncs_asked": 0}
    part = Groups(
        overlay,
        endpoint,
        barriers,
        Watches(ring, overlay),
        counters,
        lambda code, why: reports.append((code, why)),
    )
    return part, reports, counters


def test_a_local_subscription_joins_the_group_and_tells_every_peer() -> None:
    part, reports, _ = groups()
    out = Outbox()
    part.on_subscription(exact_group("news"), True, 0.0, out)
    part.on_subscription(prefix_group("sport."), True, 0.0, out)
    assert out.peers == {endpoint("b"): [Update({b"news\x00": 1, b"sport.": 1})]}  # merged
    assert part.overlay.local_digest() != Overlay("x").local_digest() and reports == []


def test_an_unsubscribe_of_a_group_never_joined_is_ignored() -> None:
    part, reports, _ = groups()
    out = Outbox()
    part.on_subscription(exact_group("old"), False, 0.0, out)  # from before a restart
    assert not out and reports == []


def test_a_sync_token_goes_to_the_barrier_and_an_invalid_group_is_bad_input() -> None:
    part, reports, _ = groups()
    out = Outbox()
    part.on_subscription(SYNC_PREFIX + b"tok", True, 0.0, out)
    assert "tok" in part.barriers._tokens_seen
    part.on_subscription(b"\x00other control", True, 0.0, out)  # reserved: no group
    part.on_subscription(b"no\x00nul\x00", True, 0.0, out)
    assert [code for code, _ in reports] == ["invalid_topic"] and not out.peers


def test_a_ping_whose_digest_differs_asks_for_a_resync_and_a_resync_gets_a_sync() -> None:
    part, _, counters = groups()
    out = Outbox()
    same = part.overlay.peer_digest("b")
    part.check_digest("b", Ping(None, None, same), out)
    part.check_digest("b", Ping(None, None, None), out)  # no digest: nothing to compare
    assert not out
    part.check_digest("b", Ping(None, None, "0123456789abcdef"), out)
    assert out.peers == {endpoint("b"): [Resync()]} and counters["resyncs_asked"] == 1
    part.on_subscription(exact_group("t"), True, 0.0, Outbox())
    answer = Outbox()
    part.on_resync("b", Resync(), 0.0, answer)
    assert answer.peers == {endpoint("b"): [Sync({b"t\x00": 1})]}


def test_a_peer_pinging_the_sorted_digest_gets_it_and_is_compared_by_it() -> None:
    """A node from before the sum digest (scope_digests.py) sends and checks the sorted
    form: it gets that form from us, and its pings are checked against that form."""
    part, _, counters = groups()
    part.on_counts("b", Update({b"news\x00": 2}), 0.0, Outbox())
    part.on_subscription(exact_group("t"), True, 0.0, Outbox())
    assert part.scope_digest("b").startswith("s")  # the sum, until b's pings say otherwise
    out = Outbox()
    part.check_digest("b", Ping(None, None, sorted_digest({b"news\x00": 2})), out)
    assert not out and part.scope_digest("b") == sorted_digest({b"t\x00": 1})
    part.check_digest("b", Ping(None, None, sorted_digest({})), out)  # it lost an update
    assert out.peers == {endpoint("b"): [Resync()]} and counters["resyncs_asked"] == 1
    part.check_digest("b", Ping(None, None, part.overlay.peer_digest("b")), Outbox())
    assert part.scope_digest("b").startswith("s")  # upgraded: the sum again
    part.check_digest("b", Ping(None, None, sorted_digest({b"news\x00": 2})), Outbox())
    part.peer_down("b", Outbox())
    assert part.scope_digest("b").startswith("s")  # forgotten with it


def test_a_peers_counts_reach_the_watches_and_go_when_it_goes_down() -> None:
    part, _, _ = groups()
    out = Outbox()
    part.watches.watch(b"client", 7, "news", out)
    part.on_counts("b", Update({b"news\x00": 2}), 0.0, out)
    assert part.overlay.reach(b"news") == {"b": 2}
    part.peer_down("b", out)
    assert part.overlay.reach(b"news") == {}
    kinds = [frame[2]["event"]["kind"] for frame in out.clients[b"client"] if frame[0] == API_EVENT]
    assert kinds == ["join", "leave"]
