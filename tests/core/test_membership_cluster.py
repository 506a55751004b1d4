"""Membership protocol rules (zdps/core/membership.py), through the simulated cluster
(tests/core/node_net.py). The same rules on ``Membership`` directly: test_membership.py.

* joining through one seed gives a full mesh;
* nodes of another scope are never admitted;
* a crashed peer is declared dead everywhere (SWIM, see test_swim.py for the detector);
  a peer heard only through others is dropped after ``peer_timeout`` of silence; a bye
  removes it at once;
* a restart (same id, bigger incarnation) replaces the old incarnation and its
  memberships; a frame from an older incarnation is ignored;
* a seed that is this very node stops being dialed; a seed whose node died is redialed;
* gossip (``peers`` answers) makes views converge when direct hellos were lost;
* a node falsely declared dead that keeps pinging is re-admitted with its memberships.
"""

from __future__ import annotations

import pytest

from tests.core.helpers import hello
from tests.core.node_net import SimNet
from zdps.core.tunables import CoreConfig
from zdps.topics import exact_group
from zdps.wire import BYE, DEAD, FANOUT, HELLO, PEERS, PING

pytestmark = pytest.mark.timeout(60)

TIMEOUT = 2.0
HB = 0.2
X = exact_group("x")


def mesh(*names: str, seed: str | None = None) -> SimNet:
    """A settled cluster where every node after the first joined through ``seed``."""
    net = SimNet()
    first, *rest = names
    net.add(first)
    for name in rest:
        net.add(name, [seed or first])
    net.settle()
    return net


# ---------------------------------------------------------------- joining


@pytest.mark.parametrize("seed", ["a", "c", "d"])
def test_join_through_one_seed_learns_and_is_learned_by_everyone(seed: str) -> None:
    net = mesh("a", "b", "c", "d")
    net.add("e", [seed])
    net.run_until_quiet()  # no timer needed: hello peer lists spread the news
    assert net.clock == 0.0
    assert net.views() == {n: set("abcde") - {n} for n in "abcde"}
    assert {net.core(n).ring.digest() for n in "abcde"} == {net.core("a").ring.digest()}
    # e dialed its seed only; the others it learned from the seed's peer list.
    assert next(s.dst for s in net.sent if s.src == "e") == seed
    learned = {s.dst for s, _ in net.entries(HELLO, src="e")}
    assert learned == set("abcd")


def test_join_chain_of_seeds_gives_full_mesh() -> None:
    net = SimNet()
    net.add("a")
    for prev, name in zip("abcd", "bcde", strict=True):
        net.add(name, [prev])
    net.settle(timeout=3.0)
    assert net.converged()
    assert all(len(v) == 4 for v in net.views().values())


def test_a_node_of_another_scope_is_never_admitted() -> None:
    net = mesh("a", "b")
    net.add("x", ["a"], scope="other")
    net.advance(5.0)
    assert "x" not in net.core("a").membership.peers
    assert net.core("x").membership.alive() == []
    hellos = [s for s in net.sent if s.src == "x" and s.dst == "a"]
    assert len(hellos) >= 3  # x kept retrying its seed
    assert net.error_codes("a").get("wrong_scope") == len(hellos)
    assert not [s for s in net.sent if s.dst == "x"]  # nothing ever answered x
    assert net.views() == {"a": {"b"}, "b": {"a"}, "x": set()}


def test_wrong_scope_frame_is_counted_and_ignored_even_from_a_known_node() -> None:
    net = mesh("a", "b")
    ping = [PING, {"view": "", "endpoint": "inproc://b"}]
    sent = len(net.sent)
    net.inject("a", net.envelope("b", [ping], scope="other"))
    assert net.error_codes("a") == {"wrong_scope": 1}
    assert len(net.sent) == sent  # an accepted ping with this digest would be answered
    net.inject("a", net.envelope("b", [ping]))
    assert len(net.sent) == sent + 1


def test_an_envelope_whose_sender_is_not_the_node_its_key_names_is_counted_and_ignored() -> None:
    net = mesh("a", "b", "c")
    ping = [PING, {"view": "", "endpoint": "inproc://b"}]
    sent = len(net.sent)
    net.inject("a", net.envelope("b", [ping]), peer="c")  # c's key, b's name
    assert net.error_codes("a") == {"spoofed_sender": 1}
    assert len(net.sent) == sent
    net.inject("a", net.envelope("b", [ping]), peer="b")
    assert len(net.sent) == sent + 1 and net.error_codes("a") == {"spoofed_sender": 1}


# ---------------------------------------------------------------- failure detection


def test_crashed_node_is_declared_dead_by_everyone_well_before_the_peer_timeout() -> None:
    net = mesh("a", "b", "c")
    net.subscribe("b", X)
    net.advance(1.05)
    crashed = net.clock
    net.crash("b")
    net.advance(5.0)
    for node in "ac":
        (down,) = net.log_lines(node, "peer_down node=b")
        assert net.log_lines(node, "peer_down node=b reason=dead") == [down]
        assert down <= crashed + 1.5 < crashed + TIMEOUT
        core = net.core(node)
        assert "b" not in core.ring and "b" not in core.membership.peers
        assert core.overlay.members(X) == {}
    assert net.views() == {"a": {"c"}, "c": {"a"}}


def test_bye_removes_the_sender_at_once() -> None:
    net = mesh("a", "b", "c")
    net.subscribe("b", X)
    net.run_until_quiet()
    assert net.core("a").overlay.members(X) == {"b": 1}
    net.advance(0.5)
    left_at = net.clock
    net.leave("b")
    net.run_until_quiet()
    assert net.clock == left_at
    for node in "ac":
        assert net.log_lines(node, "peer_down node=b reason=left") == [left_at]
        assert net.core(node).overlay.members(X) == {}
        assert "b" not in net.core(node).ring
    assert len(net.entries(BYE, src="b")) == 2


# ---------------------------------------------------------------- incarnations


def test_restarted_node_replaces_old_incarnation_and_its_memberships_vanish() -> None:
    net = mesh("a", "b", "c")
    net.subscribe("b", X)
    net.run_until_quiet()
    old = net.nodes["b"].incarnation
    net.advance(0.5)
    net.restart("b")
    net.run_until_quiet()
    assert net.nodes["b"].incarnation > old
    for node in "ac":
        lines = [line for _, line in net.logs[node] if "peer_" in line and "node=b " in line]
        assert lines == [
            "peer_up node=b endpoint=inproc://b",
            'peer_down node=b reason=restarted why="a new incarnation said hello"',
            "peer_up node=b endpoint=inproc://b",
        ]
        assert net.core(node).membership.peers["b"].incarnation == net.nodes["b"].incarnation
        assert net.core(node).overlay.members(X) == {}
    assert net.converged()
    before = len(net.entries(FANOUT, dst="b"))
    ref = net.publish("a", "x", b"after")
    net.run_until_quiet()
    assert net.acks("a")[ref][1:] == [0, 0]
    assert len(net.entries(FANOUT, dst="b")) == before
    assert net.received("b") == []


def test_stale_frame_from_older_incarnation_is_ignored_by_the_node() -> None:
    net = mesh("a", "b")
    old = net.nodes["b"].incarnation
    net.advance(0.5)
    net.restart("b")
    net.subscribe("b", X)
    net.run_until_quiet()
    assert net.core("a").overlay.members(X) == {"b": 1}
    stale = net.envelope("b", [hello("b"), ["sync", {}]], incarnation=old)
    net.inject("a", stale)
    net.run_until_quiet()
    assert net.core("a").membership.peers["b"].incarnation == net.nodes["b"].incarnation
    assert net.core("a").overlay.members(X) == {"b": 1}  # the stale sync did not wipe it
    assert net.core("a").counters["ignored_unknown_peer"] == 1
    assert net.log_lines("a", "restarted") == [0.5]


# ---------------------------------------------------------------- seeds


def test_seed_that_is_this_very_node_stops_being_dialed() -> None:
    net = SimNet()
    net.alias("inproc://a-alias", "a")
    net.add("a", ["inproc://a-alias", "inproc://b"])
    net.advance(6.0)
    to_alias = [s for s in net.sent if s.endpoint == "inproc://a-alias"]
    to_nowhere = [s for s in net.sent if s.endpoint == "inproc://b"]
    assert len(to_alias) == 1  # answered by itself: never again
    assert len(to_nowhere) >= 4  # an unanswered seed keeps being retried, with backoff
    assert len(to_nowhere) <= 8
    assert net.core("a").membership.peers == {}


def test_seed_is_redialed_after_the_node_behind_it_died() -> None:
    net = mesh("a", "b")
    net.crash("a")
    net.advance(3.0)
    assert net.views() == {"b": set()}
    redials = [s for s in net.sent if s.src == "b" and s.endpoint == "inproc://a" and s.time > 2.0]
    assert redials
    net.restart("a")
    net.advance(3.0)
    assert net.views() == {"a": {"b"}, "b": {"a"}}


# ---------------------------------------------------------------- gossip


def test_two_nodes_joining_through_different_seeds_at_once_meet() -> None:
    """Each learns the other's seed from its own, and says hello there without a list:
    neither hears of the other from the hellos; the next pings' views differ, and the
    ``peers`` they get back introduce them, within two heartbeat intervals."""
    net = mesh("a", "b")
    net.add("c", ["a"])
    net.add("d", ["b"])
    net.run_until_quiet()
    assert not net.converged()
    net.advance(2 * CoreConfig().heartbeat_interval)
    assert net.converged()


def test_gossip_makes_views_converge_when_direct_hellos_were_lost() -> None:
    net = mesh("a", "b")
    net.cut("c", "d")  # c's and d's hellos to each other are lost
    net.add("c", ["a"])
    net.add("d", ["b"])
    net.advance(3.0)  # longer than the join timeout: c and d gave up on each other
    assert net.views() == {"a": set("bcd"), "b": set("acd"), "c": {"a", "b"}, "d": {"a", "b"}}
    healed = net.clock
    net.heal()
    net.advance(1.0)
    assert net.converged()
    # c and d learned of each other only from a's and b's peer lists.
    gossip = [s for s, body in net.entries(PEERS) if s.dst in "cd" and set(body) >= {"c", "d"}]
    assert gossip
    first_hello = min(
        s.time for s, _ in net.entries(HELLO) if {s.src, s.dst} == {"c", "d"} and s.time >= healed
    )
    assert first_hello <= healed + 2 * HB


# ---------------------------------------------------------------- false suspicion


def test_peer_heard_only_through_others_is_dropped_here_and_readmitted() -> None:
    """A one-way cut: indirect probes keep b alive, the silence backstop drops it at a only."""
    net = mesh("a", "b", "c")
    net.subscribe("b", X)
    net.run_until_quiet()
    cut_at = net.clock
    net.cut("b", "a", both=False)  # a stops hearing b; b still hears a
    while not net.log_lines("a", "peer_down node=b"):
        net.advance(HB)
    (down,) = net.log_lines("a", "peer_down node=b reason=dead")
    assert cut_at + TIMEOUT <= down <= cut_at + TIMEOUT + HB + 1e-3
    assert net.entries(DEAD) == []  # silence is a local matter: no verdict was spread
    assert net.core("a").overlay.members(X) == {}
    assert "a" in net.core("b").membership.alive()  # b never noticed
    assert "b" in net.core("c").membership.alive()  # nor did c
    net.heal()
    net.advance(1.0)
    assert net.log_lines("b", "peer_down node=a") == []
    assert len(net.log_lines("a", "peer_up node=b ")) == 2
    assert net.converged()
    assert net.core("a").overlay.members(X) == {"b": 1}
    ref = net.publish("a", "x", b"back")
    net.run_until_quiet()
    assert net.acks("a")[ref][1:] == [1, 1]
    assert [d.payload for d in net.received("b", "x")] == [b"back"]
