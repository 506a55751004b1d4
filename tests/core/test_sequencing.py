"""Sequencing (zdps/core/sequencing.py): what a topic's owner does with a publish.

* The topic's owner (``ring.owner``) sequences: seq 1, 2, 3 ... without gaps whatever
  the entry node, and every subscriber sees the same total order.
* Epochs a node hands out only grow, and a new one starts above every epoch in the
  topic's history; a topic idle for ``idle_topic_ttl`` is forgotten, and its next
  publish opens a new epoch.
* A batch of ``n`` gets ``n`` consecutive seqs at once and stays one unit: one history
  entry, one copy per node, one acknowledgement of ``n``; a refusal refuses all ``n``.
* The owner stores what it sequences and copies it; ack level ``owner`` is acked at
  once, ``replicated`` waits until every replica it was sent to confirmed it (its
  last seq; a ``stored`` of seq 0 refuses that epoch's waiting ones and starts a new
  epoch).
* ``delete`` ends a topic with a ``closed`` header after every earlier message; the
  next publish opens a larger epoch at seq 1. It drops the history everywhere.
* ``create`` sets a topic's retention at the owner and its replicas.

Sans-IO tests build an ``Owner`` from its parts and read the ``Outbox``; the others
run the simulated cluster (tests/core/node_net.py).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.helpers import (
    FAST,
    MAX_PAYLOAD,
    cluster,
    history,
    placed,
    publish,
    stored,
    topic_owned_by,
)
from tests.core.node_net import SimNet, wait_for
from zdps.core.acks import Routes
from zdps.core.copy_pacing import CopyPacing
from zdps.core.flow import FlowControl
from zdps.core.history import HistoryStore
from zdps.core.interest import InterestCache
from zdps.core.outbox import Outbox
from zdps.core.overlay import Overlay
from zdps.core.replication import Replication
from zdps.core.ring import HashRing
from zdps.core.sequencing import Owner, Sequencer
from zdps.core.status import COUNTERS
from zdps.core.tunables import CoreConfig
from zdps.topics import exact_group, prefix_group
from zdps.wire import (
    API_ACK,
    API_NACK,
    CLOSED,
    CONSUMED,
    E_NO_REPLICA,
    E_REPLICA_LOST,
    E_TIMEOUT,
    E_TOO_LARGE,
    LEVEL_OWNER,
    LEVEL_REPLICATED,
    STORE,
)
from zdps.wire.api import publish_entry
from zdps.wire.batches import pack_batch
from zdps.wire.data import Fanout, Retention, Store, Stored, StoredEntry
from zdps.wire.gossip import Update

pytestmark = pytest.mark.timeout(120)

DEFAULT = Retention(CoreConfig().history, CoreConfig().history_ttl)
CLIENT = b"client"


def endpoint(node: str) -> str:
    return f"inproc://{node}"


def batch(*payloads: bytes) -> bytes:
    return pack_batch(list(payloads))


X = batch(b"x")


def make_owner(nodes: str = "abc", replicas: int = 1, reachable: str = "abc") -> Owner:
    """Node ``a``'s owner side on a ring of ``nodes``; only ``reachable`` have an endpoint."""
    ring = HashRing(nodes)
    history = HistoryStore(Retention(100, 60.0))
    replication = Replication("a", ring, history, replicas)

    def endpoint_of(node: str) -> str | None:
        return endpoint(node) if node in reachable else None

    interest = InterestCache("a", ring, Overlay("a"), endpoint_of, history, replication)
    return Owner(
        "a", ring, Sequencer(1_000, 0.0, history.last_epoch), history, replication, interest,
        Routes(endpoint_of), FlowControl(), dict.fromkeys(COUNTERS, 0), ack_timeout=10.0,
    )  # fmt: skip


# ---------------------------------------------------------------- epochs in the cluster


def test_idle_topics_are_forgotten_and_restart_with_a_new_epoch() -> None:
    net = SimNet(config=CoreConfig(idle_topic_ttl=5.0))
    net.add("a")
    net.subscribe("a", exact_group("busy"))
    net.subscribe("a", exact_group("idle"))
    for topic in ("busy", "idle"):
        net.publish("a", topic, b"1")
    net.run_until_quiet()
    for _ in range(10):  # "busy" keeps being used, "idle" does not
        net.advance(1.0)
        net.publish("a", "busy", b"x")
        net.run_until_quiet()
    assert len(net.core("a").sequencer) == 1
    net.publish("a", "idle", b"2")
    net.run_until_quiet()
    (first, _), (second, seq) = net.stamps("a", "idle")
    assert second > first and seq == 1
    assert len({epoch for epoch, _ in net.stamps("a", "busy")}) == 1


def test_a_healed_netsplit_opens_new_epochs_for_every_topic_a_restart_does_not() -> None:
    """Peers declared dead that come back in the same life (a netsplit healed): their
    subscribers may have missed what was sequenced without them, even when their side
    sequenced nothing, and a recovery they ran meanwhile may have been answered by the
    owner of their side, which held none of the topic's history. A new epoch makes them
    fetch again from the oldest position they know (§7.9; seeds 280203 and 1184 of
    test_recovery_schedules.py). A restarted node is not back in the same life."""
    net = cluster("abc")
    topic = topic_owned_by("a", "abc", among=("ab", "a"))
    net.subscribe("c", exact_group(topic))
    net.run_until_quiet()
    net.publish("a", topic, b"1")
    net.run_until_quiet()
    net.isolate("c")
    wait_for(net, lambda: "c" not in net.core("a").ring)
    net.publish("a", topic, b"2")  # c is declared dead: the epoch goes on
    net.run_until_quiet()
    net.heal()
    net.settle()
    net.publish("a", topic, b"3")  # c is back in the same life: a new epoch
    net.run_until_quiet()
    net.restart("b")
    net.settle()
    net.publish("a", topic, b"4")  # b restarted: the epoch goes on
    net.run_until_quiet()
    (e1, s1, _), (e2, s2, _), (e3, s3, _), (e4, s4, _) = stored(net, "a", topic)
    assert (s1, e2, s2, s3, e4, s4) == (1, e1, 2, 1, e3, 2) and e3 > e2
    assert net.stamps("c", topic) == [(e1, 1), (e3, 1), (e3, 2)]  # c missed seq 2


def test_concurrent_publishes_get_gapless_seqs_and_one_total_order() -> None:
    net = cluster("abcd")
    topic = topic_owned_by("a", "abcd")
    for node in "abcd":
        net.subscribe(node, exact_group(topic))
    net.run_until_quiet()
    sent = []
    for i in range(24):
        entry = "abcd"[(i * 7) % 4 if i % 5 else 3]
        sent.append((entry, net.publish(entry, topic, f"{entry}{i}".encode())))
    net.run_until_quiet()
    orders = {node: [d.payload for d in net.received(node, topic)] for node in "abcd"}
    assert len({tuple(o) for o in orders.values()}) == 1
    (epoch,) = {e for e, _ in net.stamps("a", topic)}
    for node in "abcd":
        assert net.stamps(node, topic) == [(epoch, s) for s in range(1, 25)]
    order = orders["a"]
    for entry in "abcd":  # each entry node's publishes keep their order ...
        published = [f"{e}{i}".encode() for i, (e, _) in enumerate(sent) if e == entry]
        assert [p for p in order if p[:1] == entry.encode()] == published
        # ... and each ack names the seq its message was delivered with.
        seqs = [net.acks(entry)[ref][0] for e, ref in sent if e == entry]
        assert [order[s - 1] for s in seqs] == published


# ---------------------------------------------------------------- Owner: ack levels


def test_an_owner_level_publish_is_stored_copied_and_acked_at_once() -> None:
    owner, out = make_owner(), Outbox()
    topic = placed("abc", "ab")
    owner.sequence(topic, 1, X, (CLIENT, 7), LEVEL_OWNER, 0.0, out)
    epoch = owner.sequencer.epoch(topic)
    assert out.peers == {}  # b delivers to nobody: its copy may wait (copy_pacing.py) ...
    CopyPacing().release(0.0, out)  # ... but nothing went to b lately, so it goes now
    assert out.peers == {endpoint("b"): [Store([(topic, 1, epoch, 1, X, False)])]}
    assert out.clients == {CLIENT: [[API_ACK, [[7, 1, 0, 0, 1]]]]}
    assert owner.history.fetch(topic, 0, 0, 10) == [(epoch, 1, b"x")]
    assert owner.replication.pending == 0


def test_a_batch_is_one_seq_range_one_history_entry_one_copy_and_one_ack() -> None:
    owner, out = make_owner(), Outbox()
    topic = placed("abc", "ab")
    subscribe_c_and_a(owner, topic)
    first, second = batch(b"1", b"2", b"3"), batch(b"4", b"5")
    owner.sequence(topic, 3, first, (CLIENT, 7), LEVEL_OWNER, 0.0, out)
    owner.sequence(topic, 2, second, (CLIENT, 10), LEVEL_OWNER, 0.0, out)
    epoch = owner.sequencer.epoch(topic)
    CopyPacing().release(0.0, out)
    assert out.peers == {
        endpoint("b"): [
            Store([(topic, 1, epoch, 3, first, False), (topic, 4, epoch, 2, second, False)])
        ],
        endpoint("c"): [Fanout([(topic, 1, epoch, 3, first), (topic, 4, epoch, 2, second)])],
    }
    assert out.deliveries == [(topic, 1, epoch, 3, first), (topic, 4, epoch, 2, second)]
    assert out.clients == {CLIENT: [[API_ACK, [[7, 1, 2, 2, 5]]]]}  # one run: refs 7-11
    entries = owner.history.topics[topic].entries
    assert [(e.seq, e.n, e.batch) for e in entries] == [(1, 3, first), (4, 2, second)]
    assert owner.history.newest(topic) == (epoch, 5)
    assert owner.counters["owned_published"] == 5
    assert owner.counters["fanout_sent"] == 5  # to c; the store to b is not a delivery copy
    assert owner.flow.inflight == {"b": 5, "c": 5}  # messages, not entries
    assert owner.peer_fanout == {"c": 5}


def subscribe_c_and_a(owner: Owner, topic: str) -> None:
    """``c`` and ``a`` itself have a member of ``topic``."""
    owner.interest.overlay.peer_up("c")
    owner.interest.overlay.handle("c", Update({exact_group(topic): 1}))
    owner.interest.overlay.join(exact_group(topic))


def test_a_replicated_publish_waits_for_every_replica_it_was_sent_to() -> None:
    owner, out = make_owner(replicas=2), Outbox()
    topic = placed("abc", "abc")
    owner.sequence(topic, 1, X, (CLIENT, 7), LEVEL_REPLICATED, 0.0, out)
    epoch = owner.sequencer.epoch(topic)
    assert set(out.peers) == {endpoint("b"), endpoint("c")}  # a store copy each
    assert out.clients == {} and owner.replication.pending == 1
    owner.on_stored("b", Stored([StoredEntry(topic, epoch, 1)]), 0.1, out)
    owner.on_stored("c", Stored([StoredEntry(topic, epoch - 1, 1)]), 0.1, out)  # other epoch
    assert out.clients == {}
    owner.on_stored("c", Stored([StoredEntry(topic, epoch, 1)]), 0.2, out)
    assert out.clients == {CLIENT: [[API_ACK, [[7, 1, 0, 0, 1]]]]}
    assert owner.replication.pending == 0


@FAST
@given(n=st.integers(2, 50), confirmed=st.integers(1, 49))
def test_a_replicated_batch_is_acked_once_its_last_seq_is_stored(n: int, confirmed: int) -> None:
    owner, out = make_owner(), Outbox()
    topic = placed("abc", "ab")
    owner.sequence(topic, 1, X, None, LEVEL_OWNER, 0.0, out)  # seq 1, no ack wanted
    blob = pack_batch([b"m"] * n)
    owner.sequence(topic, n, blob, (CLIENT, 7), LEVEL_REPLICATED, 0.0, out)  # seqs 2..n+1
    epoch = owner.sequencer.epoch(topic)
    CopyPacing().release(0.0, out)  # the held copy goes first, with the waited-on one
    assert out.peers[endpoint("b")] == [
        # Only the replicated batch asks to be confirmed at once.
        Store([(topic, 1, epoch, 1, X, False), (topic, 2, epoch, n, blob, False, True)])
    ]
    confirmed = min(confirmed, n)  # b stored up to seq confirmed: not the whole batch
    owner.on_stored("b", Stored([StoredEntry(topic, epoch, confirmed)]), 0.1, out)
    assert out.clients == {} and owner.replication.pending == n  # messages waiting
    owner.on_stored("b", Stored([StoredEntry(topic, epoch, n + 1)]), 0.2, out)
    assert out.clients == {CLIENT: [[API_ACK, [[7, 2, 0, 0, n]]]]}
    assert owner.replication.pending == 0


def test_a_replicated_publish_without_a_reachable_replica_is_refused_unsequenced() -> None:
    owner, out = make_owner(reachable="ac"), Outbox()
    topic = placed("abc", "ab")
    owner.sequence(topic, 1, X, (CLIENT, 7), LEVEL_REPLICATED, 0.0, out)
    owner.sequence(topic, 4, batch(b"1", b"2", b"3", b"4"), (CLIENT, 8), LEVEL_REPLICATED, 0.0, out)
    assert [frame[0] for frame in out.clients[CLIENT]] == [API_NACK]
    assert [(e[0], e[1], e[3]) for e in out.clients[CLIENT][0][1]] == [
        (7, E_NO_REPLICA, 1),
        (8, E_NO_REPLICA, 4),  # the whole batch
    ]
    assert out.peers == {} and out.deliveries == []
    assert len(owner.history) == 0 and len(owner.sequencer) == 0
    assert owner.counters["owned_published"] == 0


def test_stored_seq_0_refuses_that_epochs_waiting_publishes_and_starts_a_new_epoch() -> None:
    owner, out = make_owner(), Outbox()
    topic = placed("abc", "ab")
    owner.sequence(topic, 1, X, (CLIENT, 7), LEVEL_REPLICATED, 0.0, out)
    owner.sequence(topic, 3, batch(b"a", b"b", b"c"), (CLIENT, 8), LEVEL_REPLICATED, 0.0, out)
    epoch = owner.sequencer.epoch(topic)
    owner.on_stored("b", Stored([StoredEntry(topic, epoch - 1, 0)]), 0.1, out)  # older epoch
    assert out.clients == {} and owner.sequencer.epoch(topic) == epoch
    owner.on_stored("b", Stored([StoredEntry(topic, epoch, 0)]), 0.1, out)
    (nack,) = out.clients[CLIENT]
    assert nack[0] == API_NACK and [(r, c, n) for r, c, _, n in nack[1]] == [
        (7, E_REPLICA_LOST, 1),
        (8, E_REPLICA_LOST, 3),
    ]
    assert owner.replication.pending == 0 and owner.sequencer.epoch(topic) == 0
    owner.sequence(topic, 1, batch(b"y"), None, LEVEL_OWNER, 0.2, out)
    assert owner.sequencer.epoch(topic) > epoch


def test_a_replica_going_away_or_the_ack_timeout_refuses_what_waited() -> None:
    owner, out = make_owner(), Outbox()
    topic = placed("abc", "ab")
    owner.sequence(topic, 2, batch(b"x", b"x"), (CLIENT, 7), LEVEL_REPLICATED, 0.0, out)
    owner.sequence(topic, 5, batch(*[b"y"] * 5), (CLIENT, 9), LEVEL_REPLICATED, 5.0, out)
    assert owner.replication.pending == 7  # messages, not batches
    owner.expire(9.9, out)
    assert out.clients == {}
    owner.expire(10.0, out)  # the first one's deadline
    assert [(e[0], e[1], e[3]) for e in out.clients[CLIENT][0][1]] == [(7, E_TIMEOUT, 2)]
    owner.peer_down("c", out)  # not a replica of the topic
    assert len(out.clients[CLIENT][0][1]) == 1
    owner.peer_down("b", out)
    assert [(e[0], e[1], e[3]) for e in out.clients[CLIENT][0][1]] == [
        (7, E_TIMEOUT, 2),
        (9, E_REPLICA_LOST, 5),
    ]
    assert owner.replication.pending == 0


# ---------------------------------------------------------------- batches in the cluster


@FAST
@given(
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    over=st.sets(st.integers(0, 23), max_size=4),
    entry=st.sampled_from("abc"),
)
def test_only_an_oversized_payload_of_a_batch_is_refused(
    sizes: list[int], over: set[int], entry: str
) -> None:
    """A client's batch with payloads over max_payload: only their refs are nacked
    too_large; the others are sequenced, in order, with consecutive seqs."""
    net = cluster("abc")
    topic = topic_owned_by("b", "abc")
    net.subscribe("c", exact_group(topic))
    net.run_until_quiet()
    refs = [net.ref() for _ in range(sum(sizes))]
    payloads = [b"o" * (MAX_PAYLOAD + 1) if i in over else b"%d" % i for i in range(len(refs))]
    entries, at = [], 0
    for n in sizes:
        entries.append(publish_entry(refs[at], topic, payloads[at : at + n], LEVEL_OWNER))
        at += n
    net.publish_batch(entry, entries)
    net.run_until_quiet()
    too_large = {i for i in over if i < len(refs)}
    nacks = net.nacks(entry)
    assert {r: code for r, (code, _) in nacks.items()} == {
        refs[i]: E_TOO_LARGE for i in sorted(too_large)
    }
    kept = [i for i in range(len(refs)) if i not in too_large]
    acks = net.acks(entry)
    assert sorted(acks) == [refs[i] for i in kept]
    assert [acks[refs[i]][0] for i in kept] == list(range(1, len(kept) + 1))  # consecutive
    assert [d.payload for d in net.received("c", topic)] == [payloads[i] for i in kept]
    assert [s for _, s in net.stamps("c", topic)] == list(range(1, len(kept) + 1))
    assert net.core("b").counters["owned_published"] == len(kept)
    assert net.core(entry).counters["published"] == len(kept)
    assert net.error_codes(entry) == ({E_TOO_LARGE: len(too_large)} if too_large else {})


def test_a_replicated_batch_is_stored_as_one_entry_at_the_replica_and_acked_as_one() -> None:
    net = cluster("abc")
    topic = placed("abc", "ab")
    net.subscribe("b", exact_group(topic))
    net.run_until_quiet()
    payloads = [b"r%d" % i for i in range(4)]
    ref = net.publish_run("c", topic, payloads, LEVEL_REPLICATED)
    net.run_until_quiet()
    epoch = net.stamps("b", topic)[0][0]
    assert [e for _, e in net.entries(STORE, dst="b")] == [
        [topic, 1, epoch, 4, pack_batch(payloads), True, True]
    ]
    assert [(e.seq, e.n) for e in net.core("b").history.topics[topic].entries] == [(1, 4)]
    assert [p for _, _, p in stored(net, "b", topic)] == payloads
    assert [e for _, e in net.entries("stored", src="b")] == [[topic, epoch, 4]]  # its last seq
    assert net.acks("c") == {ref + i: [1 + i, 1, 1] for i in range(4)}
    assert [d.payload for d in net.received("b", topic)] == payloads
    assert net.core("a").counters["owned_published"] == 4
    assert net.core("b").counters["replica_stored"] == 4


# ---------------------------------------------------------------- delete


def test_delete_closes_after_earlier_messages_and_restarts_at_seq_one() -> None:
    net = cluster("abcd")
    topic = topic_owned_by("a", "abcd")
    net.subscribe("b", exact_group(topic))
    net.subscribe("c", prefix_group(topic[:1]))
    net.subscribe("a", exact_group(topic))
    net.run_until_quiet()
    for i in range(3):
        net.publish("b", topic, f"old{i}".encode())  # all queued behind each other
    ref = net.request("b", "delete", {"topic": topic})
    net.publish("b", topic, b"new0")
    net.run_until_quiet()
    net.publish("d", topic, b"new1")
    net.run_until_quiet()
    assert net.acks("b")[ref] == [4, 3, 3]
    expected = None
    for node in "abc":
        got = [
            (d.header.get("type"), d.header["seq"], d.payload) for d in net.received(node, topic)
        ]
        assert got == [
            (None, 1, b"old0"),
            (None, 2, b"old1"),
            (None, 3, b"old2"),
            ("closed", 4, b""),
            (None, 1, b"new0"),
            (None, 2, b"new1"),
        ]
        epochs = [d.header["epoch"] for d in net.received(node, topic)]
        assert epochs[:4] == [epochs[0]] * 4 and epochs[4:] == [epochs[4]] * 2
        assert epochs[4] > epochs[0]
        assert expected in (None, epochs)
        expected = epochs
    assert [e for s, e in net.entries(CLOSED)] == [[topic, 4, expected[0]]] * 2
    assert net.received("d") == []


def test_delete_of_unknown_topic_closes_an_empty_epoch() -> None:
    net = cluster("ab")
    topic = topic_owned_by("b", "ab")
    net.subscribe("a", exact_group(topic))
    net.run_until_quiet()
    ref = net.request("a", "delete", {"topic": topic})
    net.run_until_quiet()
    assert net.acks("a")[ref] == [1, 1, 1]
    (closed,) = net.received("a", topic)
    assert closed.header["type"] == "closed" and closed.header["seq"] == 1
    net.publish("a", topic, b"first")
    net.run_until_quiet()
    assert net.stamps("a", topic)[0][1] == 1
    assert net.stamps("a", topic)[0][0] > closed.header["epoch"]


@pytest.mark.parametrize("replica_subscribes", [False, True])
def test_delete_drops_the_history_everywhere(replica_subscribes: bool) -> None:
    net = cluster("abc")
    topic = placed("abc", "ab")
    net.subscribe("c", exact_group(topic))
    if replica_subscribes:
        net.subscribe("b", exact_group(topic))
    net.run_until_quiet()
    net.request("c", "create", {"topic": topic, "history": 50, "ttl": 100})
    for i in range(3):
        publish(net, "c", topic, b"%d" % i)
    net.run_until_quiet()
    assert all(len(stored(net, n, topic)) == 3 for n in "ab")

    ref = net.request("c", "delete", {"topic": topic})
    net.run_until_quiet()
    assert net.acks("c")[ref][0] == 4
    for node in "abc":
        assert topic not in net.core(node).history.held()
        assert net.core(node).history.retention(topic) == DEFAULT
    closed_to_b = [e for s, e in net.entries(CLOSED) if s.dst == "b"]
    epoch = net.stamps("c", topic)[0][0]
    if replica_subscribes:
        assert closed_to_b == [[topic, 4, epoch]]
    else:
        assert closed_to_b == [[topic, 4, epoch, False]]
    closed_at = {n: [d for d in net.received(n, topic) if "type" in d.header] for n in "abc"}
    assert len(closed_at["c"]) == 1
    assert len(closed_at["b"]) == (1 if replica_subscribes else 0)
    assert closed_at["a"] == []
    assert len(net.received("b", topic)) == (4 if replica_subscribes else 0)
    assert history(net, "c", topic, since=0)["entries"] == []


def test_delete_reaches_replicas_of_a_topic_kept_only_by_its_own_retention() -> None:
    """The cluster keeps no history by default; this topic was created with one."""
    net = cluster("abc", CoreConfig(history=0))
    topic = placed("abc", "ab")
    net.request("c", "create", {"topic": topic, "history": 10, "ttl": 100})
    publish(net, "c", topic, b"x")
    net.run_until_quiet()
    assert len(stored(net, "b", topic)) == 1
    net.subscribe("a", exact_group("elsewhere"))  # any change of the owner's scope
    net.run_until_quiet()
    ref = net.request("c", "delete", {"topic": topic})
    net.run_until_quiet()
    assert net.acks("c")[ref][0] == 2
    for node in "ab":
        assert topic not in net.core(node).history.held(), node


# ---------------------------------------------------------------- create


def test_create_sets_retention_at_owner_and_replicas_and_survives_an_owner_change() -> None:
    net = cluster("abc")
    topic = placed("abc", "ab", then=("bc", "bc"))
    ref = net.request("c", "create", {"topic": topic, "history": 3, "ttl": 100})
    net.run_until_quiet()
    assert net.acks("c")[ref] == [0, 0, 0]
    net.advance(0.5)  # the forwarded create counted as in flight until the owner confirms it
    assert sum(count for _, count in net.entries(CONSUMED, src="a", dst="c")) == 1
    assert {n: net.core(n).history.retention(topic) for n in "abc"} == {
        "a": Retention(3, 100.0),
        "b": Retention(3, 100.0),
        "c": DEFAULT,  # not in the placement
    }
    for i in range(5):
        publish(net, "c", topic, b"%d" % i)
    net.run_until_quiet()
    for node in "ab":
        assert [(s, p) for _, s, p in stored(net, node, topic)] == [(3, b"2"), (4, b"3"), (5, b"4")]

    net.crash("a")
    net.settle()
    assert {n: net.core(n).history.retention(topic) for n in "bc"} == {
        "b": Retention(3, 100.0),
        "c": Retention(3, 100.0),  # handed over with the history
    }
    publish(net, "c", topic, b"5")
    publish(net, "c", topic, b"6")
    net.run_until_quiet()
    result = history(net, "c", topic, since=0)
    assert [p for _, _, p in result["entries"]] == [b"4", b"5", b"6"]
    for node in "bc":
        assert [p for _, _, p in stored(net, node, topic)] == [b"4", b"5", b"6"]
