"""Acks (zdps/core/acks.py): acknowledgements and refusals travel back along each route.

* Publishes travel in batches (one topic, ``n`` messages). Acks carry
  ``[ref, seq, nodes, subscribers, n]``: the batch's ``n`` messages got seqs
  ``seq``..``seq + n - 1``; ref 0 wants none.
* A hop that forwards a batch with a route takes one fresh ack id for it (in order)
  and relays its ack entry back along that batch's own route, as one entry (to a peer)
  or one run of ``n`` (to a client); unknown ids (late answers) are ignored, each on
  its own. ``len`` counts the messages waiting, not the batches.
* A refusal refuses the whole batch: a client gets ``[ref, code, message, n]``.
* A lost owner gives ``owner_lost`` (only to what waited on that peer), a silent one
  ``timeout`` after the ack timeout, in deadline order.

Sans-IO tests drive ``AckRelay`` and ``Routes`` directly and read the ``Outbox``; the
others run the simulated cluster (tests/core/node_net.py).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.helpers import CONFIG, FAST, MAX_PAYLOAD, cluster, topic_owned_by
from tests.core.node_net import wait_for
from zdps.client.protocol import PublishResult
from zdps.client.session import Session
from zdps.client.steps import Pending
from zdps.core.acks import AckRelay, Routes
from zdps.core.outbox import Outbox
from zdps.core.routing import JOIN_BELOW
from zdps.core.tunables import CoreConfig
from zdps.topics import exact_group
from zdps.wire import (
    ACK,
    API_ACK,
    API_NACK,
    API_PUBLISH,
    E_NO_ROUTE,
    E_OWNER_LOST,
    E_TIMEOUT,
    FORWARD,
    LEVEL_OWNER,
    LEVEL_REPLICATED,
    encode_api,
)
from zdps.wire.api import publish_entry
from zdps.wire.batches import unpack_batch
from zdps.wire.data import Ack, Nack, NackEntry

pytestmark = pytest.mark.timeout(60)

CLIENT = b"client"


def endpoint(node: str) -> str | None:
    return None if node == "gone" else f"inproc://{node}"


def relay(ack_timeout: float = 10.0) -> AckRelay:
    return AckRelay(Routes(endpoint), ack_timeout)


def refused(out: Outbox) -> list[tuple[int, str, int]]:
    """(ref, code, n) of every API nack entry queued to CLIENT."""
    return [
        (ref, code, n)
        for frame in out.clients.get(CLIENT, [])
        if frame[0] == API_NACK
        for ref, code, _, n in frame[1]
    ]


# ---------------------------------------------------------------- AckRelay and Routes


def test_ack_ids_are_handed_out_in_order_one_per_batch() -> None:
    acks = relay()
    ids = [acks.track((CLIENT, ref), n, "o", 0.0) for ref, n in ((5, 1), (9, 4), (2, 2))]
    assert ids == [1, 2, 3]
    assert len(acks) == 7  # the messages waiting, not the batches


def test_each_batchs_ack_is_relayed_as_one_along_its_route() -> None:
    acks, out = relay(), Outbox()
    for route, n in (((CLIENT, 10), 2), (("p", 40), 3), ((CLIENT, 12), 1), ((CLIENT, 30), 4)):
        acks.track(route, n, "o", 0.0)
    # ids 1-4 are batches of 2, 3, 1 and 4 messages that got seqs 7-8, 9-11, 12, 13-16.
    entries = [[1, 7, 2, 3, 2], [2, 9, 2, 3, 3], [3, 12, 2, 3, 1], [4, 13, 2, 3, 4]]
    acks.on_ack("o", Ack(entries), 0.1, out)
    # To the client: runs; refs 10-11 and 12 continue each other, seqs 7-8 and 12 do not.
    assert out.clients == {
        CLIENT: [[API_ACK, [[10, 7, 2, 3, 2], [12, 12, 2, 3, 1], [30, 13, 2, 3, 4]]]]
    }
    # To the peer: one entry for its batch, under its own ack id.
    assert out.peers == {endpoint("p"): [Ack([[40, 9, 2, 3, 3]])]}
    assert len(acks) == 0


def test_a_clients_consecutive_batches_are_acknowledged_as_one_run() -> None:
    acks, out = relay(), Outbox()
    acks.track((CLIENT, 10), 3, "o", 0.0)
    acks.track((CLIENT, 13), 2, "o", 0.0)
    acks.on_ack("o", Ack([[1, 5, 1, 1, 3], [2, 8, 1, 1, 2]]), 0.1, out)
    assert out.clients == {CLIENT: [[API_ACK, [[10, 5, 1, 1, 5]]]]}


def test_the_n_of_a_batch_is_the_one_tracked_not_the_one_in_the_answer() -> None:
    """An ack id names one batch: an entry's n never reaches the ids after it."""
    acks, out = relay(), Outbox()
    acks.track((CLIENT, 10), 2, "o", 0.0)
    acks.track((CLIENT, 20), 1, "o", 0.0)
    acks.on_ack("o", Ack([[1, 1, 1, 1, 3]]), 0.1, out)
    assert out.clients == {CLIENT: [[API_ACK, [[10, 1, 1, 1, 2]]]]}
    assert len(acks) == 1


def test_unknown_and_late_ids_are_ignored_each_on_its_own() -> None:
    acks, out = relay(), Outbox()
    acks.track((CLIENT, 10), 1, "o", 0.0)
    acks.track((CLIENT, 11), 2, "o", 0.0)
    acks.on_ack("o", Ack([[2, 8, 1, 1, 2]]), 0.1, out)
    acks.on_ack(
        "o", Ack([[0, 1, 1, 1, 1], [3, 1, 1, 1, 1], [1, 2, 1, 1, 1], [2, 9, 1, 1, 2]]), 0.1, out
    )  # 0, 3: unknown; 1 known; 2 late
    acks.on_nack(
        "o", Nack([NackEntry(2, E_TIMEOUT, "late"), NackEntry(9, E_TIMEOUT, "?")]), 0.1, out
    )
    assert out.clients == {CLIENT: [[API_ACK, [[11, 8, 1, 1, 2], [10, 2, 1, 1, 1]]]]}
    assert len(acks) == 0


def test_a_refusal_is_relayed_along_the_route_for_the_whole_batch() -> None:
    acks, out = relay(), Outbox()
    acks.track((CLIENT, 10), 5, "o", 0.0)
    acks.track(("p", 40), 3, "o", 0.0)
    acks.on_nack("o", Nack([NackEntry(1, E_NO_ROUTE, "a"), NackEntry(2, E_NO_ROUTE, "b")]), 0, out)
    assert out.clients == {CLIENT: [[API_NACK, [[10, E_NO_ROUTE, "a", 5]]]]}
    # Between nodes a nack names the batch; the peer knows its n.
    assert out.peers == {endpoint("p"): [Nack([NackEntry(40, E_NO_ROUTE, "b")])]}
    assert len(acks) == 0


def test_a_peer_going_down_refuses_only_what_waited_on_it() -> None:
    acks, out = relay(), Outbox()
    acks.track((CLIENT, 10), 1, "b", 0.0)
    acks.track((CLIENT, 11), 4, "c", 0.0)
    acks.track((CLIENT, 15), 3, "b", 0.0)
    acks.peer_down("b", out)
    assert refused(out) == [(10, E_OWNER_LOST, 1), (15, E_OWNER_LOST, 3)]
    assert len(acks) == 4
    acks.on_ack("c", Ack([[2, 1, 1, 1, 4]]), 0.1, out)  # the other one still gets its ack
    assert out.clients[CLIENT][-1] == [API_ACK, [[11, 1, 1, 1, 4]]]


def test_expiry_refuses_with_timeout_in_deadline_order() -> None:
    acks, out = relay(ack_timeout=10.0), Outbox()
    for ref, n, now in ((10, 2, 0.0), (12, 1, 1.0), (13, 3, 2.0)):
        acks.track((CLIENT, ref), n, "o", now)
    acks.expire(9.99, out)
    assert out.clients == {}
    acks.expire(10.0, out)
    assert len(acks) == 4
    acks.expire(12.5, out)
    assert refused(out) == [(10, E_TIMEOUT, 2), (12, E_TIMEOUT, 1), (13, E_TIMEOUT, 3)]
    assert len(acks) == 0


def test_routes_to_a_peer_without_an_endpoint_write_nothing() -> None:
    routes, out = Routes(endpoint), Outbox()
    routes.ack(out, ("gone", 1), 1, 1, 1, 5)
    routes.refuse(out, ("gone", 2), E_TIMEOUT, "x", 5)
    assert not out


@FAST
@given(
    batches=st.lists(
        st.tuples(st.integers(1, 50), st.sampled_from(["ack", "nack", "down", "expire"])),
        min_size=1,
        max_size=8,
    )
)
def test_every_message_of_every_batch_is_answered_exactly_once(
    batches: list[tuple[int, str]],
) -> None:
    """Whatever happens to each batch, its n refs are each acked or refused once."""
    acks, out = relay(ack_timeout=10.0), Outbox()
    ref, seq, ids = 1, 1, []
    for n, fate in batches:
        hop = "down" if fate == "down" else "o"
        ids.append((acks.track((CLIENT, ref), n, hop, 0.0), ref, n, seq, fate))
        ref, seq = ref + n, seq + n
    assert len(acks) == sum(n for n, _ in batches)
    acks.expire(9.9, out)  # nothing is due yet
    assert not out
    for ack_id, _, n, first, fate in ids:
        if fate == "ack":
            acks.on_ack("o", Ack([[ack_id, first, 1, 1, n]]), 1.0, out)
        elif fate == "nack":
            acks.on_nack("o", Nack([NackEntry(ack_id, E_NO_ROUTE, "x")]), 1.0, out)
    acks.peer_down("down", out)
    acks.expire(10.0, out)  # what is left: the batches nobody answered
    assert len(acks) == 0
    answered: dict[int, object] = {}
    for kind, entries in out.clients[CLIENT]:
        for entry in entries:
            count = entry[4] if kind == API_ACK else entry[3]
            for i in range(count):
                assert entry[0] + i not in answered
                answered[entry[0] + i] = entry[1] + i if kind == API_ACK else entry[1]
    expected = {}
    codes = {"nack": E_NO_ROUTE, "down": E_OWNER_LOST, "expire": E_TIMEOUT}
    for _, first_ref, n, first_seq, fate in ids:
        for i in range(n):
            expected[first_ref + i] = first_seq + i if fate == "ack" else codes[fate]
    assert answered == expected


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
    assert [entry[3] for _, entry in net.entries(FORWARD)] == [0]  # no ack id
    assert net.entries(ACK) == []
    assert net.frames("a") == [] and net.frames("c") == []
    assert net.core("a").pending == 0


def test_a_batch_to_one_topic_is_acknowledged_by_one_run() -> None:
    """A batch of n costs one ack entry per hop and one run of n to the client."""
    net = cluster("ab")
    topic = topic_owned_by("b", "ab")
    net.subscribe("b", exact_group(topic))
    net.publish_batch("a", [publish_entry(10, topic, [b"m"] * 5, LEVEL_OWNER)])
    net.run_until_quiet()
    ((_, forward),) = net.entries(FORWARD)
    assert forward[1] == 5  # one fwd entry of 5
    assert [e for _, e in net.entries(ACK, src="b")] == [[forward[3], 1, 1, 1, 5]]
    api_acks = [f[1] for f in net.frames("a") if f[0] == API_ACK]
    assert api_acks == [[[10, 1, 1, 1, 5]]]
    assert net.acks("a") == {10 + i: [1 + i, 1, 1] for i in range(5)}
    session, pending = Session("test"), Pending()
    session.awaited.update(dict.fromkeys(range(10, 15), pending))
    session.absorb(encode_api(API_ACK, api_acks[0]))
    assert pending.outcomes == {10 + i: PublishResult(1 + i, 1, 1) for i in range(5)}


def test_batches_between_nodes_are_acknowledged_one_entry_each() -> None:
    """Ack ids name batches: two batches forwarded in one turn that do not continue
    each other (refs 10-12, then 20-21) get two ack entries, and two runs to the client."""
    net = cluster("ab")
    topic = topic_owned_by("b", "ab")
    net.publish_batch(
        "a",
        [
            publish_entry(10, topic, [b"m"] * 3, LEVEL_OWNER),
            publish_entry(20, topic, [b"m"] * 2, LEVEL_OWNER),
        ],
    )
    net.run_until_quiet()
    ids = [e[3] for _, e in net.entries(FORWARD)]
    assert [e for _, e in net.entries(ACK, src="b")] == [[ids[0], 1, 0, 0, 3], [ids[1], 4, 0, 0, 2]]
    assert [f[1] for f in net.frames("a") if f[0] == API_ACK] == [
        [[10, 1, 0, 0, 3], [20, 4, 0, 0, 2]]
    ]
    assert net.core("a").pending == 0


def test_small_batches_that_continue_each_other_travel_as_one() -> None:
    """A client's small batches to one topic with consecutive refs, arriving in one
    turn (one per frame at a moderate rate), are joined into one forward: one entry for
    the owner to sequence and copy, one ack entry back, one run to the client."""
    net = cluster("ab")
    topic = topic_owned_by("b", "ab")
    net.subscribe("b", exact_group(topic))
    frames = [
        encode_api(API_PUBLISH, [publish_entry(ref, topic, [b"m%d" % ref], LEVEL_OWNER)])
        for ref in (10, 11, 12)
    ]
    for frame in frames[:2]:  # three frames in one turn: handed over, then one flush
        net.core("a").on_client_frame(CLIENT, frame, net.clock)
    net.client_frame("a", frames[2])
    net.run_until_quiet()
    ((_, forward),) = net.entries(FORWARD)
    assert forward[1] == 3 and unpack_batch(forward[2], 3) == [b"m10", b"m11", b"m12"]
    assert [e for _, e in net.entries(ACK, src="b")] == [[forward[3], 1, 1, 1, 3]]
    assert [f[1] for f in net.frames("a") if f[0] == API_ACK] == [[[10, 1, 1, 1, 3]]]
    assert [d.payload for d in net.received("b", topic)] == [b"m10", b"m11", b"m12"]
    assert net.core("a").pending == 0


@pytest.mark.parametrize("lazies", [(True, True), (True, False), (False, True)])
def test_a_joined_forward_is_lazy_only_if_both_batches_were(lazies: tuple[bool, bool]) -> None:
    """The client waits on a batch that is not lazy: joined to a lazy one, the forward
    is not lazy, and the owner acknowledges both at once."""
    net = cluster("ab")
    topic = topic_owned_by("b", "ab")
    entries = [
        publish_entry(ref, topic, [b"m%d" % ref], LEVEL_OWNER, lazy)
        for ref, lazy in zip((10, 11), lazies, strict=True)
    ]
    net.publish_batch("a", entries)
    net.run_until_quiet()
    ((_, forward),) = net.entries(FORWARD)
    assert forward[1] == 2 and (forward[6:] == [True]) == all(lazies)


@pytest.mark.parametrize(
    "second",
    [
        ("other", 11, 1, LEVEL_OWNER),  # another topic
        ("same", 12, 1, LEVEL_OWNER),  # not the next ref
        ("same", 11, 1, LEVEL_REPLICATED),  # another level
        ("same", 11, JOIN_BELOW, LEVEL_OWNER),  # not small
    ],
    ids=["topic", "ref", "level", "size"],
)
def test_batches_that_do_not_continue_each_other_are_not_joined(second: tuple) -> None:
    net = cluster("ab")
    topics = {"same": topic_owned_by("b", "ab"), "other": topic_owned_by("b", "ab", prefix="u")}
    name, ref, n, level = second
    net.publish_batch(
        "a",
        [
            publish_entry(10, topics["same"], [b"m"], LEVEL_OWNER),
            publish_entry(ref, topics[name], [b"m"] * n, level),
        ],
    )
    net.run_until_quiet()
    assert [e[1] for _, e in net.entries(FORWARD)] == [1, n]


# ---------------------------------------------------------------- failures


def test_owner_dying_before_the_ack_gives_owner_lost() -> None:
    net = cluster("abc")
    topic = topic_owned_by("b", "abc")
    ref = net.publish("a", topic, b"lost")
    net.publish_batch("a", [publish_entry(net.ref(), topic, [b"also", b"lost"], LEVEL_OWNER)])
    net.ref()  # the batch's second ref
    net.crash("b")  # the forwards were still in flight
    assert net.core("a").pending == 3
    wait_for(net, lambda: net.log_lines("a", "peer_down node=b"))
    (declared,) = net.log_lines("a", "peer_down node=b reason=dead")
    assert {r: code for r, (code, _) in net.nacks("a").items()} == dict.fromkeys(
        (ref, ref + 1, ref + 2), E_OWNER_LOST
    )
    nacks = [e for kind, entries in net.frames("a") if kind == API_NACK for e in entries]
    assert [(e[0], e[3]) for e in nacks] == [(ref, 1), (ref + 1, 2)]  # one entry per batch
    assert net.answered_at("a", ref) == net.answered_at("a", ref + 2) == declared
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
    ref = net.ref()
    net.publish_batch("a", [publish_entry(ref, topic, [b"void"] * 4, LEVEL_OWNER)])
    net.advance(0.45)
    assert net.frames("a") == []
    answered = wait_for(net, lambda: net.frames("a"), timeout=1.0)
    assert net.frames("a") == [[API_NACK, [[ref, E_TIMEOUT, net.nacks("a")[ref][1], 4]]]]
    assert start + 0.5 <= answered <= start + 0.5 + CONFIG.heartbeat_interval + 1e-6
    assert net.core("a").pending == 0
    assert "b" in net.core("a").ring  # b is not dead, just silent
    net.heal()
    net.advance(3.0)
    assert set(net.nacks("a")) == {ref, ref + 1, ref + 2, ref + 3} and net.acks("a") == {}
