"""Two processes with one node id (a config file copied with its ``node_id``), §4.2 step 1.

* a hello from this node's id with another incarnation at another endpoint is a clash:
  counted, listed in ``status``, logged as an error, answered so the other side learns
  of it too, and never admitted; an older life of this very node (a lower incarnation
  at its own endpoint) is not a clash;
* the node started later stops (``refusal``) if it has just started and the other
  proved it runs there (it answered the challenge sent to the endpoint it names); the
  other keeps running and logs; a clash found later makes both log and neither stop; a
  stranger that claims the id without proof (a spoof) stops nobody;
* a peer list naming this node's id elsewhere gets a hello there, not a verdict;
* a peer that came back at another endpoint has its old endpoint checked for a while;
  when its old life answers there, that old life learns of the clash.
"""

from __future__ import annotations

import pytest

from tests.core.helpers import hello
from tests.core.test_membership import admitted, hellos_to, make, of
from zdps.core.clashes import CLASH_REFUSAL
from zdps.core.membership import CLASH_CHECK, Membership
from zdps.core.membership_actions import Clash, Disconnect, PeerUp
from zdps.core.node import NodeCore
from zdps.core.outbox import envelopes
from zdps.core.swim import Swim
from zdps.wire.codec import encode_envelope
from zdps.wire.gossip import Hello

pytestmark = pytest.mark.timeout(30)


def stranger_hello(advertise: str, reply: bool = True, peers: dict | None = None) -> Hello:
    return Hello(advertise, peers or {}, "inproc://a", reply)


def test_a_hello_from_our_id_elsewhere_is_a_clash_answered_once_and_not_admitted() -> None:
    m = make()  # a, incarnation 1, at inproc://a
    actions = m.handle("a", 2, stranger_hello("inproc://a2"), 0.5)
    assert of(actions, Clash) == [Clash("inproc://a2", 2, first=True, proven=False)]
    (answer,) = hellos_to(actions, "inproc://a2")
    challenge = answer.message.challenge
    assert answer.message.reply is True and challenge  # prove it, once
    assert of(actions, PeerUp) == [] and "a" not in m.peers
    assert m.clashes == {"inproc://a2": (2, 0.5)}
    again = m.handle("a", 2, stranger_hello("inproc://a2", reply=False), 0.9)
    assert again == [] and m.clashes["inproc://a2"] == (2, 0.9)
    wrong = Hello("inproc://a2", {}, "inproc://a", False, answer="guessed")
    assert m.handle("a", 2, wrong, 1.0) == []
    proof = Hello("inproc://a2", {}, "inproc://a", True, answer=challenge)
    proven = m.handle("a", 2, proof, 1.1)
    assert of(proven, Clash) == [Clash("inproc://a2", 2, first=False, proven=True)]
    (last,) = hellos_to(proven, "inproc://a2")
    assert last.message.reply is False and last.message.challenge is None  # no ping-pong
    assert of(m.handle("a", 2, proof, 1.2), Clash) == []  # proven once


def test_an_older_life_of_this_node_at_its_own_endpoint_is_not_a_clash() -> None:
    m = Membership("a", 5, "inproc://a", Swim("a", 5))
    assert m.handle("a", 4, hello("a"), 0.1) == []
    assert m.clashes == {}


def test_a_peer_list_naming_our_id_elsewhere_gets_a_hello_there() -> None:
    m = make()
    admitted(m, "b")
    actions = m.handle("b", 1, hello("b", peers={"a": ["inproc://a2", 9]}), 0.2)
    (probe,) = hellos_to(actions, "inproc://a2")
    assert probe.message.reply is True and of(actions, Clash) == []
    own = m.handle("b", 1, hello("b", peers={"a": ["inproc://a", 0]}), 0.3)
    assert hellos_to(own, "inproc://a") == []  # an old life of ours at our endpoint


@pytest.mark.parametrize("seeds", [(), ("inproc://b",)])
def test_a_peer_back_at_another_endpoint_has_its_old_one_checked_for_a_while(seeds) -> None:
    m = make(seeds=seeds)  # b's old endpoint may be a seed b answered: it is checked too
    m.tick(0.0)
    m.handle("b", 1, Hello("inproc://b", {}, "inproc://a", False, echo="inproc://b"), 0.1)
    assert m.is_alive("b", 1)
    moved = Hello("inproc://b-new", {}, "inproc://a", True)
    m.handle("b", 2, moved, 1.0)
    assert m.peers["b"].endpoint == "inproc://b-new"
    checks = [a for t in range(11, 20) for a in hellos_to(m.tick(t / 10), "inproc://b")]
    assert checks, "the old endpoint is sent hellos"
    late = m.tick(1.0 + CLASH_CHECK + 0.5)
    if seeds:  # a configured seed is dialled until it answers, however long
        assert hellos_to(m.tick(1.0 + CLASH_CHECK + 5), "inproc://b")
        return
    assert Disconnect("inproc://b") in late and hellos_to(late, "inproc://b") == []
    assert hellos_to(m.tick(1.0 + CLASH_CHECK + 5), "inproc://b") == []


# ---------------------------------------------------------------- two NodeCores


def core(incarnation: int, endpoint: str, seeds: list[str], now: float = 0.0) -> NodeCore:
    return NodeCore("a", incarnation, "sim", endpoint, seeds, now)


def pump(cores: dict[str, NodeCore], now: float, rounds: int = 10) -> list[str]:
    """Carry every message between the cores (by endpoint); the log lines, in order."""
    lines = []
    for _ in range(rounds):
        for sender in cores.values():
            out = sender.take(now)
            lines += [f"{sender.incarnation} {event}" for event in out.log]
            header = (sender.scope, sender.node, sender.incarnation)
            for endpoint, messages in {**out.probes, **out.peers}.items():
                for frame in envelopes(header, messages):
                    if endpoint in cores:
                        cores[endpoint].on_cluster_frame(frame, now)
    return lines


def test_the_node_started_second_refuses_and_the_first_logs() -> None:
    first = core(1, "inproc://a1", [])
    second = core(2, "inproc://a2", ["inproc://a1"], now=5.0)
    cores = {"inproc://a1": first, "inproc://a2": second}
    first.start(5.0)
    second.start(5.0)
    lines = pump(cores, 5.1)
    assert first.refusal is None
    assert second.refusal is not None
    assert "node id 'a' is already used by the node at inproc://a1" in second.refusal
    assert any(line.startswith("1 node_id_clash node=a other=inproc://a2 ") for line in lines), (
        lines
    )
    assert any(line.startswith("2 node_id_clash node=a other=inproc://a1 ") for line in lines)
    for node, other in ((first, "inproc://a2"), (second, "inproc://a1")):
        status = node.status(6.0)
        assert status["counters"]["id_clashes"] == 1
        assert [c["endpoint"] for c in status["clashes"]] == [other]
        assert status["peers"] == [] and status["ring"]["nodes"] == ["a"]


def test_a_stranger_claiming_our_id_without_proof_stops_nobody() -> None:
    """Found by the live fuzzer without CURVE: a made-up hello with a node's id, from an
    endpoint where nothing listens, made the node stop within 30 s of its start."""
    node = core(1, "inproc://a1", [])
    node.start(0.0)
    spoof = Hello("tcp://127.0.0.1:9", {}, "inproc://a1", True, answer="a guess")
    logged, asked = [], []
    for at in (0.5, 1.0, 5.0):
        node.on_cluster_frame(encode_envelope("sim", "a", 99, [spoof.encode()]), at)
        out = node.take(at)
        logged += [str(event) for event in out.log]
        asked += out.peers.get("tcp://127.0.0.1:9", [])
    assert node.refusal is None
    assert node.status(6.0)["counters"]["id_clashes"] == 1
    assert any("node_id_clash" in line and "asked it to prove it" in line for line in logged)
    assert asked and all(type(m) is Hello for m in asked)


def test_a_clash_found_long_after_the_start_stops_nobody() -> None:
    first = core(1, "inproc://a1", [])
    second = core(2, "inproc://a2", ["inproc://a1"], now=0.0)
    cores = {"inproc://a1": first, "inproc://a2": second}
    later = CLASH_REFUSAL + 1.0
    first.start(later)
    second.start(later)
    lines = pump(cores, later)
    assert first.refusal is None and second.refusal is None
    assert sum("node_id_clash" in line for line in lines) == 4  # each: asked, then proven
    assert sum("give one of them another node_id" in line for line in lines) == 2
