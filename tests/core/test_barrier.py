"""The subscribe barrier (zdps/core/barrier.py): ``ready`` answers once a subscription
is known to its owners (docs/PROTOCOL.md §9.4).

* The node waits for both the sync token (from the XPUB, after the groups) and the
  ``ready`` request, in either order, then sends ``barrier`` to each owner concerned:
  the ring owner of every exact group (itself excepted), every alive peer for a prefix.
* It answers ``true`` once every owner asked answered ``barrier_ok``; an owner that goes
  down is not waited for, the new ring's owner is asked instead.
* A barrier, or a ``ready`` whose token never shows up, fails with ``timeout``.

Sans-IO tests drive ``Barriers`` directly and read the ``Outbox``; the last one runs the
simulated cluster (tests/core/node_net.py).
"""

from __future__ import annotations

import pytest

from tests.core.helpers import topic_owned_by
from tests.core.node_net import SimNet
from zdps.core.barrier import Barriers
from zdps.core.outbox import Outbox
from zdps.core.ring import HashRing
from zdps.topics import SYNC_PREFIX, exact_group, prefix_group
from zdps.wire import API_REPLY, BARRIER, E_TIMEOUT
from zdps.wire.api import Ready
from zdps.wire.requests import Barrier, BarrierOk

pytestmark = pytest.mark.timeout(60)

CLIENT = b"client"
TIMEOUT = 8.0


def endpoint(node: str) -> str:
    return f"inproc://{node}"


def barriers(nodes: str = "abc") -> Barriers:
    """Node ``a``'s barriers; its alive peers are the other ``nodes`` on the ring."""
    ring = HashRing(nodes)
    return Barriers("a", ring, lambda: sorted(ring.nodes - {"a"}), endpoint, TIMEOUT)


def asked(out: Outbox) -> dict[str, list]:
    """The barriers sent, per node."""
    prefix = len(endpoint(""))
    return {
        to[prefix:]: [m for m in messages if type(m) is Barrier]
        for to, messages in out.peers.items()
    }


def replies(out: Outbox) -> list:
    return [frame[1:] for frame in out.clients.get(CLIENT, []) if frame[0] == API_REPLY]


# ---------------------------------------------------------------- Barriers


def test_a_ready_before_its_token_waits_for_the_token() -> None:
    part, out = barriers(), Outbox()
    topic = topic_owned_by("b", "abc")
    part.on_ready(CLIENT, 7, Ready("tok", [exact_group(topic)]), 0.0, out)
    assert not out
    part.token_seen("other", 0.1, out)
    assert not out
    part.token_seen("tok", 0.2, out)
    assert asked(out) == {"b": [Barrier(1)]}
    assert replies(out) == []


def test_a_token_before_its_ready_asks_the_owners_at_once() -> None:
    part, out = barriers(), Outbox()
    topic = topic_owned_by("c", "abc")
    part.token_seen("tok", 0.0, out)
    part.on_ready(CLIENT, 7, Ready("tok", [exact_group(topic)]), 0.1, out)
    assert asked(out) == {"c": [Barrier(1)]}


def test_each_owner_is_asked_once_and_the_node_itself_never() -> None:
    part, out = barriers(), Outbox()
    groups = [
        exact_group(topic_owned_by(owner, "abc", prefix)) for owner in "bcb" for prefix in "xy"
    ]
    groups.append(exact_group(topic_owned_by("a", "abc")))
    part.token_seen("tok", 0.0, out)
    part.on_ready(CLIENT, 7, Ready("tok", groups), 0.0, out)
    assert asked(out) == {"b": [Barrier(1)], "c": [Barrier(1)]}


def test_groups_owned_here_alone_are_ready_at_once() -> None:
    part, out = barriers(), Outbox()
    part.token_seen("tok", 0.0, out)
    part.on_ready(CLIENT, 7, Ready("tok", [exact_group(topic_owned_by("a", "abc"))]), 0.0, out)
    assert asked(out) == {} and replies(out) == [[7, True, True]]


def test_prefix_groups_ask_every_alive_peer() -> None:
    part, out = barriers("abcd"), Outbox()
    part.token_seen("tok", 0.0, out)
    part.on_ready(CLIENT, 7, Ready("tok", [prefix_group("news.")]), 0.0, out)
    assert asked(out) == {"b": [Barrier(1)], "c": [Barrier(1)], "d": [Barrier(1)]}


def test_barrier_ok_from_every_owner_asked_releases_the_ready() -> None:
    part, out = barriers(), Outbox()
    part.token_seen("tok", 0.0, out)
    part.on_ready(CLIENT, 7, Ready("tok", [prefix_group("")]), 0.0, out)
    part.on_barrier_ok("b", BarrierOk(1), 0.1, out)
    part.on_barrier_ok("b", BarrierOk(1), 0.1, out)  # twice: still c to go
    part.on_barrier_ok("c", BarrierOk(2), 0.1, out)  # another barrier
    part.on_barrier_ok("z", BarrierOk(1), 0.1, out)  # never asked
    assert replies(out) == []
    part.on_barrier_ok("c", BarrierOk(1), 0.2, out)
    assert replies(out) == [[7, True, True]]
    part.on_barrier_ok("c", BarrierOk(1), 0.3, out)  # a late one changes nothing
    assert replies(out) == [[7, True, True]]


def test_an_owner_going_down_makes_the_new_rings_owner_asked() -> None:
    part, out = barriers(), Outbox()
    topic = topic_owned_by("c", "abc", among=("ab", "b"))
    part.token_seen("tok", 0.0, out)
    part.on_ready(CLIENT, 7, Ready("tok", [exact_group(topic)]), 0.0, out)
    assert asked(out) == {"c": [Barrier(1)]}
    part.ring.remove("c")  # the core updates the ring before the parts hear of it
    part.peer_down("c", out)
    assert asked(out) == {"c": [Barrier(1)], "b": [Barrier(1)]}
    assert replies(out) == []
    part.on_barrier_ok("b", BarrierOk(1), 0.5, out)
    assert replies(out) == [[7, True, True]]


def test_expiry_answers_timeout() -> None:
    part, out = barriers(), Outbox()
    topic = topic_owned_by("b", "abc")
    part.on_ready(CLIENT, 7, Ready("never", [exact_group(topic)]), 0.0, out)  # no token
    part.token_seen("tok", 1.0, out)
    part.on_ready(CLIENT, 8, Ready("tok", [exact_group(topic)]), 1.0, out)  # no answer
    part.expire(TIMEOUT - 0.01, out)
    assert replies(out) == []
    part.expire(TIMEOUT, out)
    assert [(ref, ok, result["code"]) for ref, ok, result in replies(out)] == [
        (7, False, E_TIMEOUT)
    ]
    part.expire(1.0 + TIMEOUT, out)
    assert [(ref, ok, result["code"]) for ref, ok, result in replies(out)] == [
        (7, False, E_TIMEOUT),
        (8, False, E_TIMEOUT),
    ]
    part.on_barrier_ok("b", BarrierOk(1), 9.5, out)  # too late: answered already
    assert len(replies(out)) == 2


def test_a_token_seen_too_long_ago_is_forgotten() -> None:
    part, out = barriers(), Outbox()
    part.token_seen("tok", 0.0, out)
    part.expire(TIMEOUT, out)
    part.on_ready(CLIENT, 7, Ready("tok", [prefix_group("")]), TIMEOUT, out)
    assert asked(out) == {}  # it waits for the token again


def test_an_owner_answers_barrier_ok_to_whoever_asked() -> None:
    part, out = barriers(), Outbox()
    part.on_barrier("b", Barrier(41), 0.0, out)
    assert out.peers == {endpoint("b"): [BarrierOk(41)]}


# ---------------------------------------------------------------- in the cluster


def test_a_barrier_whose_owner_dies_asks_the_new_owner() -> None:
    net = SimNet()
    for name, seeds in (("a", []), ("b", ["a"]), ("c", ["a"])):
        net.add(name, seeds)
    net.settle()
    topic = next(
        t
        for i in range(2000)
        if HashRing(["a", "b", "c"]).owner(t := f"t{i}") == "c"
        and HashRing(["a", "b"]).owner(t) == "b"
    )
    group = exact_group(topic)
    net.crash("c")  # the barrier to c will be lost; a does not know yet
    net.subscribe("a", group)
    net.subscribe("a", SYNC_PREFIX + b"tok")
    ref = net.request("a", "ready", {"token": "tok", "groups": [group]})
    net.run_until_quiet()
    assert ref not in net.replies("a")
    net.advance(3.0)  # c is declared dead; b owns the topic now
    barriers_to_b = [m for s in net.sent if s.dst == "b" for m in s.messages if m[0] == BARRIER]
    assert barriers_to_b, "the new owner was asked"
    assert net.replies("a")[ref] == (True, True)
    assert net.core("b").overlay.members(group) == {"a": 1}
