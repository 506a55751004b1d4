"""Membership protocol rules (zdps/core/membership.py), on ``Membership`` directly.

The same rules through the simulated cluster: test_membership_cluster.py.

* a bye removes its sender at once; a bye from an unknown or stale incarnation is
  ignored;
* a restart (same id, bigger incarnation) replaces the old incarnation; a hello from
  an older incarnation is ignored;
* a seed that is this very node stops being dialed, one that is not keeps being
  retried, each time on a fresh connection;
* ping digests and ``peers`` answers make views converge;
* a ping from a stranger starts a handshake (a node falsely declared dead that keeps
  pinging is re-admitted).
"""

from __future__ import annotations

import pytest

from tests.core.helpers import hello
from zdps.core.membership import Membership
from zdps.core.membership_actions import Disconnect, PeerDown, PeerUp, Send
from zdps.core.membership_config import MembershipConfig
from zdps.core.peers import PeerState
from zdps.core.swim import Swim, SwimConfig
from zdps.wire import HELLO, PEERS, PING
from zdps.wire.gossip import Bye
from zdps.wire.messages import decode_message

pytestmark = pytest.mark.timeout(60)

TIMEOUT = 2.0
HB = 0.2


def make(node: str = "a", incarnation: int = 1, seeds: tuple[str, ...] = ()) -> Membership:
    return Membership(
        node,
        incarnation,
        f"inproc://{node}",
        Swim(node, incarnation, SwimConfig(silence_timeout=TIMEOUT)),
        list(seeds),
        MembershipConfig(heartbeat_interval=HB, join_timeout=TIMEOUT),
    )


def of(actions: list, kind: type) -> list:
    return [a for a in actions if isinstance(a, kind)]


def hellos_to(actions: list, endpoint: str) -> list:
    return [a for a in of(actions, Send) if a.endpoint == endpoint and a.message.KIND == HELLO]


def admitted(m: Membership, node: str, incarnation: int = 1, now: float = 0.0) -> list:
    actions = m.handle(node, incarnation, hello(node), now)
    assert m.is_alive(node, incarnation)
    return actions


# ---------------------------------------------------------------- failure detection


def test_bye_from_unknown_or_stale_incarnation_is_ignored() -> None:
    m = make()
    admitted(m, "b", incarnation=5)
    assert m.handle("c", 1, Bye(), 0.1) == []
    assert m.handle("b", 4, Bye(), 0.1) == []
    assert m.is_alive("b", 5)
    assert of(m.handle("b", 5, Bye(), 0.2), PeerDown) == [PeerDown("b", "left", "said bye")]


# ---------------------------------------------------------------- incarnations


def test_restart_replaces_the_old_incarnation() -> None:
    m = make()
    admitted(m, "b", incarnation=1)
    actions = m.handle("b", 2, hello("b"), 1.0)
    downs, ups = of(actions, PeerDown), of(actions, PeerUp)
    assert downs == [PeerDown("b", "restarted", "a new incarnation said hello")]
    assert ups == [PeerUp("b", "inproc://b")]
    assert actions.index(downs[0]) < actions.index(ups[0])
    assert hellos_to(actions, "inproc://b")  # the new incarnation gets its answer
    assert m.is_alive("b", 2) and not m.is_alive("b", 1)


def test_stale_hello_from_older_incarnation_is_ignored() -> None:
    m = make()
    admitted(m, "b", incarnation=7)
    assert m.handle("b", 6, hello("b"), 1.0) == []
    assert m.is_alive("b", 7) and m.peers["b"].incarnation == 7


def test_stale_hello_after_the_newer_incarnation_left_is_ignored() -> None:
    m = make()
    admitted(m, "b", incarnation=7)
    m.handle("b", 7, Bye(), 1.0)
    assert m.handle("b", 6, hello("b"), 1.1) == []
    assert "b" not in m.peers


# ---------------------------------------------------------------- seeds


def test_seed_equal_to_own_endpoint_is_never_dialed() -> None:
    m = make(seeds=("inproc://a", "inproc://b"))
    actions = m.tick(0.0)
    assert hellos_to(actions, "inproc://a") == []
    assert len(hellos_to(actions, "inproc://b")) == 1


def test_hello_from_self_with_other_incarnation_does_not_mark_seed_as_self() -> None:
    m = make(seeds=("inproc://alias",))
    assert hellos_to(m.tick(0.0), "inproc://alias")
    assert not of(m.handle("a", 99, hello("a", dialed="inproc://alias"), 0.1), PeerUp)
    assert hellos_to(m.tick(5.0), "inproc://alias")
    assert m.handle("a", 1, hello("a", dialed="inproc://alias"), 5.1) == []
    assert hellos_to(m.tick(10.0), "inproc://alias") == []


def test_each_seed_retry_uses_a_fresh_connection() -> None:
    """Hellos to an absent seed must not pile up and all arrive when it comes up."""
    m = Membership("a", 1, "inproc://a", Swim("a", 1), ["inproc://seed"])
    first = m.tick(0.0)
    assert of(first, Disconnect) == [] and len(of(first, Send)) == 1
    retries = [m.tick(t / 10) for t in range(1, 60)]
    sent = [a for actions in retries for a in actions if isinstance(a, Send)]
    assert sent, "the seed is retried"
    for actions in retries:
        sends = of(actions, Send)
        if sends:
            assert of(actions, Disconnect) == [Disconnect("inproc://seed")]
            assert actions.index(of(actions, Disconnect)[0]) < actions.index(sends[0])


# ---------------------------------------------------------------- gossip


def test_ping_with_other_view_is_answered_with_peers() -> None:
    m = make()
    admitted(m, "b")
    admitted(m, "c")
    assert (
        m.handle(
            "b",
            1,
            decode_message([PING, {"view": m.peers.view_digest(), "endpoint": "inproc://b"}]),
            0.1,
        )
        == []
    )
    (answer,) = m.handle(
        "b", 1, decode_message([PING, {"view": "other", "endpoint": "inproc://b"}]), 0.1
    )
    assert answer.endpoint == "inproc://b" and answer.message.KIND == PEERS
    assert set(answer.message.encode()[1]) == {"b", "c"}


def test_peers_message_makes_unknown_nodes_be_dialed() -> None:
    m = make()
    admitted(m, "b")
    actions = m.handle(
        "b",
        1,
        decode_message(
            [PEERS, {"a": ["inproc://a", 1], "b": ["inproc://b", 1], "c": ["inproc://c", 3]}]
        ),
        0.1,
    )
    assert [a.endpoint for a in of(actions, Send)] == ["inproc://c"]
    assert actions[0].message.encode()[1]["reply"] is True
    assert m.peers["c"].state is PeerState.JOINING
    assert (
        m.handle("b", 1, decode_message([PEERS, {"c": ["inproc://c", 3]}]), 0.2) == []
    )  # already dialing


def test_views_agree_when_digests_agree() -> None:
    a, b = make("a"), make("b")
    admitted(a, "b")
    b.handle("a", 1, hello("a"), 0.0)
    a.handle("c", 1, hello("c"), 0.0)
    assert a.peers.view_digest() != b.peers.view_digest()
    b.handle("c", 1, hello("c"), 0.0)
    assert a.peers.view_digest() == b.peers.view_digest()


# ---------------------------------------------------------------- false suspicion


def test_stranger_ping_starts_a_handshake() -> None:
    m = make()
    actions = m.handle("b", 3, decode_message([PING, {"view": "v", "endpoint": "inproc://b"}]), 0.0)
    assert [a.endpoint for a in hellos_to(actions, "inproc://b")] == ["inproc://b"]
    assert m.peers["b"].state is PeerState.JOINING and not m.is_alive("b", 3)
    ups = of(m.handle("b", 3, hello("b", reply=False), 0.1), PeerUp)
    assert ups == [PeerUp("b", "inproc://b")] and m.is_alive("b", 3)
