"""Acks (zdps/core/acks.py): acknowledgements and refusals travel back along each route.

* Acks carry ``[ref, seq, nodes, subscribers]``; ref 0 wants none. They travel as runs
  ``[id, seq, nodes, subscribers, n]``: a batch to one topic costs one entry per hop.
* A hop that forwards a publish with a route takes a fresh ack id (in order) and
  relays each acknowledgement of a run back along that publish's own route; unknown
  ids (late answers) are ignored, each on its own.
* A lost owner gives ``owner_lost`` (only to what waited on that peer), a silent one
  ``timeout`` after the ack timeout, in deadline order.

Sans-IO tests drive ``AckRelay`` and ``Routes`` directly and read the ``Outbox``; the
others run the simulated cluster (tests/core/node_net.py).
"""

from __future__ import annotations

import pytest

from tests.core.helpers import CONFIG, MAX_PAYLOAD, cluster, topic_owned_by
from tests.core.node_net import wait_for
from zdps.client.protocol import PublishResult
from zdps.client.session import Session
from zdps.client.steps import Pending
from zdps.core.acks import AckRelay, Routes
from zdps.core.outbox import Outbox
from zdps.core.tunables import CoreConfig
from zdps.topics import exact_group
from zdps.wire import (
    ACK,
    API_ACK,
    API_NACK,
    E_NO_ROUTE,
    E_OWNER_LOST,
    E_TIMEOUT,
    FORWARD,
    encode_api,
)
from zdps.wire.data import Ack, Nack, NackEntry

pytestmark = pytest.mark.timeout(60)

CLIENT = b"client"


def endpoint(node: str) -> str | None:
    return None if node == "gone" else f"inproc://{node}"


def relay(ack_timeout: float = 10.0) -> AckRelay:
    return AckRelay(Routes(endpoint), ack_timeout)


# ---------------------------------------------------------------- AckRelay and Routes


def test_ack_ids_are_handed_out_in_order() -> None:
    acks = relay()
    assert [acks.track((CLIENT, ref), "o", 0.0) for ref in (5, 9, 2)] == [1, 2, 3]
    assert len(acks) == 3


def test_a_run_is_relayed_one_by_one_along_each_route() -> None:
    acks, out = relay(), Outbox()
    for route in ((CLIENT, 10), (CLIENT, 11), ("p", 40), (CLIENT, 30)):
        acks.track(route, "o", 0.0)
    acks.on_ack("o", Ack([[1, 7, 2, 3, 4]]), 0.1, out)  # ids 1-4 got seqs 7-10
    assert out.clients == {CLIENT: [[API_ACK, [[10, 7, 2, 3, 2], [30, 10, 2, 3, 1]]]]}
    assert out.peers == {endpoint("p"): [Ack([[40, 9, 2, 3, 1]])]}
    assert len(acks) == 0


def test_unknown_and_late_ids_are_ignored_each_on_its_own() -> None:
    acks, out = relay(), Outbox()
    acks.track((CLIENT, 10), "o", 0.0)
    acks.track((CLIENT, 11), "o", 0.0)
    acks.on_ack("o", Ack([[2, 8, 1, 1, 1]]), 0.1, out)
    acks.on_ack("o", Ack([[0, 1, 1, 1, 5]]), 0.1, out)  # 0, 3, 4: unknown; 1 known; 2 late
    acks.on_nack(
        "o", Nack([NackEntry(2, E_TIMEOUT, "late"), NackEntry(9, E_TIMEOUT, "?")]), 0.1, out
    )
    assert out.clients == {CLIENT: [[API_ACK, [[11, 8, 1, 1, 1], [10, 2, 1, 1, 1]]]]}
    assert len(acks) == 0


def test_a_refusal_is_relayed_along_the_route() -> None:
    acks, out = relay(), Outbox()
    acks.track((CLIENT, 10), "o", 0.0)
    acks.track(("p", 40), "o", 0.0)
    acks.on_nack("o", Nack([NackEntry(1, E_NO_ROUTE, "a"), NackEntry(2, E_NO_ROUTE, "b")]), 0, out)
    assert out.clients == {CLIENT: [[API_NACK, [[10, E_NO_ROUTE, "a"]]]]}
    assert out.peers == {endpoint("p"): [Nack([NackEntry(40, E_NO_ROUTE, "b")])]}


def test_a_peer_going_down_refuses_only_what_waited_on_it() -> None:
    acks, out = relay(), Outbox()
    acks.track((CLIENT, 10), "b", 0.0)
    acks.track((CLIENT, 11), "c", 0.0)
    acks.track((CLIENT, 12), "b", 0.0)
    acks.peer_down("b", out)
    (frame,) = out.clients[CLIENT]
    assert frame[0] == API_NACK and [(r, c) for r, c, _ in frame[1]] == [
        (10, E_OWNER_LOST),
        (12, E_OWNER_LOST),
    ]
    assert len(acks) == 1
    acks.on_ack("c", Ack([[2, 1, 1, 1, 1]]), 0.1, out)  # the other one still gets its ack
    assert out.clients[CLIENT][-1] == [API_ACK, [[11, 1, 1, 1, 1]]]


def test_expiry_refuses_with_timeout_in_deadline_order() -> None:
    acks, out = relay(ack_timeout=10.0), Outbox()
    for ref, now in ((10, 0.0), (11, 1.0), (12, 2.0)):
        acks.track((CLIENT, ref), "o", now)
    acks.expire(9.99, out)
    assert out.clients == {}
    acks.expire(10.0, out)
    acks.expire(12.5, out)
    (frame,) = out.clients[CLIENT]
    assert [(r, c) for r, c, _ in frame[1]] == [(10, E_TIMEOUT), (11, E_TIMEOUT), (12, E_TIMEOUT)]
    assert len(acks) == 0


def test_routes_to_a_peer_without_an_endpoint_write_nothing() -> None:
    routes, out = Routes(endpoint), Outbox()
    routes.ack(out, ("gone", 1), 1, 1, 1)
    routes.refuse(out, ("gone", 2), E_TIMEOUT, "x")
    assert not out


# ---------------------------------------------------------------- in the cluster


def test_publish_with_ref_zero_gets_no_ack() -> None:
    net = cluster("abc")
    topic = topic_owned_by("c", "abc")
    net.subscribe("b", exact_group(topic))
    net.run_until_quiet()
    assert net.publish("a", topic, b"quiet", ack=False) == 0
    net.run_until_quiet()
    assert net.publish("c", topic, b"quiet too", ack=False) == 0
    net.run_until_quiet()
    assert [d.payload for d in net.received("b", topic)] == [b"quiet", b"quiet too"]
    assert [entry[2] for _, entry in net.entries(FORWARD)] == [0]  # no ack id
    assert net.entries(ACK) == []
    assert net.frames("a") == [] and net.frames("c") == []
    assert net.core("a").pending == 0


def test_a_batch_to_one_topic_is_acknowledged_by_one_run() -> None:
    """Acks are runs [ref, seq, nodes, subscribers, n]; a batch costs one entry per hop."""
    net = cluster("ab")
    topic = topic_owned_by("b", "ab")
    net.subscribe("b", exact_group(topic))
    net.publish_batch("a", [[ref, topic, b"m"] for ref in range(10, 15)])
    net.run_until_quiet()
    assert [e for _, e in net.entries(ACK, src="b")] == [[1, 1, 1, 1, 5]]
    api_acks = [f[1] for f in net.frames("a") if f[0] == API_ACK]
    assert api_acks == [[[10, 1, 1, 1, 5]]]
    assert net.acks("a") == {10 + i: [1 + i, 1, 1] for i in range(5)}
    session, pending = Session("test"), Pending()
    session.awaited.update(dict.fromkeys(range(10, 15), pending))
    session.absorb(encode_api(API_ACK, api_acks[0]))
    assert pending.outcomes == {10 + i: PublishResult(1 + i, 1, 1) for i in range(5)}


# ---------------------------------------------------------------- failures


def test_owner_dying_before_the_ack_gives_owner_lost() -> None:
    net = cluster("abc")
    topic = topic_owned_by("b", "abc")
    ref = net.publish("a", topic, b"lost")
    net.crash("b")  # the forward was still in flight
    assert net.core("a").pending == 1
    wait_for(net, lambda: net.log_lines("a", "peer_down node=b"))
    (declared,) = net.log_lines("a", "peer_down node=b reason=dead")
    assert net.nacks("a")[ref][0] == E_OWNER_LOST
    assert net.answered_at("a", ref) == declared
    assert net.acks("a") == {}
    assert net.core("a").pending == 0


def test_owner_restarting_before_the_ack_gives_owner_lost_at_once() -> None:
    net = cluster("abc")
    topic = topic_owned_by("b", "abc")
    ref = net.publish("a", topic, b"lost")
    net.crash("b")  # the forward is lost with it
    net.advance(0.3)
    net.restart("b")
    net.run_until_quiet()
    assert net.nacks("a") == {ref: (E_OWNER_LOST, net.nacks("a")[ref][1])}
    assert net.answered_at("a", ref) == 0.3
    ref2 = net.publish("a", topic, b"again")
    net.run_until_quiet()
    assert net.acks("a")[ref2][0] == 1  # the new incarnation starts a new sequence


def test_silent_owner_gives_timeout_after_ack_timeout() -> None:
    net = cluster("abc", CoreConfig(max_payload=MAX_PAYLOAD, ack_timeout=0.5))
    topic = topic_owned_by("b", "abc")
    net.advance(0.05)
    net.cut("a", "b", both=False)
    start = net.clock
    ref = net.publish("a", topic, b"void")
    net.advance(0.45)
    assert net.frames("a") == []
    answered = wait_for(net, lambda: net.frames("a"), timeout=1.0)
    assert net.nacks("a") == {ref: (E_TIMEOUT, net.nacks("a")[ref][1])}
    assert start + 0.5 <= answered <= start + 0.5 + CONFIG.heartbeat_interval + 1e-6
    assert net.core("a").pending == 0
    assert "b" in net.core("a").ring  # b is not dead, just silent
    net.heal()
    net.advance(3.0)
    assert set(net.nacks("a")) == {ref} and net.acks("a") == {}
