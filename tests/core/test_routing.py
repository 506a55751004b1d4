"""Routing (zdps/core/routing.py), driven through the simulated cluster of NodeCores
(tests/core/node_net.py).

* A publish entering any node goes to the topic's owner (``ring.owner``), in one hop
  when views agree, and the owner sequences it: seq 1, 2, 3 ... without gaps whatever
  the entry node.
* When rings disagree a forward is forwarded again, at most ``MAX_HOPS`` times.
* A batch (one topic, ``n`` messages, one blob) travels as one entry at every step: one
  ``fwd`` entry per hop, one seq range at the owner, one ``fanout``/``store`` entry per
  interested node, one ack entry per batch between nodes (relayed by each hop as one)
  and one run of ``n`` to the client. A refusal on the way refuses all ``n`` refs.
* A batch keeps its order, and everything one turn queues for a destination leaves in
  one frame.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.helpers import CONFIG, FAST, cluster, topic_owned_by
from tests.core.node_net import SimNet, wait_for
from zdps.core.ring import HashRing
from zdps.core.routing import JOIN_BELOW
from zdps.topics import exact_group, prefix_group
from zdps.wire import (
    ACK,
    API_ACK,
    API_NACK,
    E_NO_ROUTE,
    E_TOO_MANY_HOPS,
    FANOUT,
    FORWARD,
    LEVEL_OWNER,
    NACK,
    STORE,
)
from zdps.wire.api import publish_entry
from zdps.wire.batches import pack_batch
from zdps.wire.limits import MAX_HOPS

pytestmark = pytest.mark.timeout(60)


# ---------------------------------------------------------------- to the owner


def test_owner_sequences_publishes_from_every_entry_node() -> None:
    net = cluster("abcde")
    topic = topic_owned_by("d", "abcde")
    net.subscribe("b", exact_group(topic))
    net.subscribe("c", prefix_group("t"))
    net.run_until_quiet()
    refs = {}
    for entry in "abcde":
        refs[entry] = net.publish(entry, topic, entry.encode())
        net.run_until_quiet()
    forwards = net.entries(FORWARD)
    assert sorted(s.src for s, _ in forwards) == ["a", "b", "c", "e"]
    assert {s.dst for s, _ in forwards} == {"d"}
    assert all(entry[4] == 1 for _, entry in forwards)  # one hop
    assert {n: net.core(n).counters["owned_published"] for n in "abcde"} == {
        "a": 0,
        "b": 0,
        "c": 0,
        "d": 5,
        "e": 0,
    }
    assert {s.src for s, _ in net.entries(FANOUT)} == {"d"}
    for entry in "abcde":
        assert net.acks(entry)[refs[entry]][0] == "abcde".index(entry) + 1
    epoch = net.stamps("b", topic)[0][0]
    for node in "bc":
        assert net.stamps(node, topic) == [(epoch, seq) for seq in range(1, 6)]
        assert [d.payload for d in net.received(node, topic)] == [b"a", b"b", b"c", b"d", b"e"]


def test_a_batch_keeps_its_order_and_travels_in_one_frame() -> None:
    net = cluster("abc")
    topic = topic_owned_by("c", "abc")
    for node in "abc":
        net.subscribe(node, exact_group(topic))
    net.run_until_quiet()
    seqs = {}
    for entry in "ac":  # through a non-owner, then at the owner itself
        refs = [net.ref() for _ in range(5)]
        payloads = [f"{entry}{i}".encode() for i in range(5)]
        net.publish_batch(entry, [publish_entry(refs[0], topic, payloads, LEVEL_OWNER)])
        net.run_until_quiet()
        seqs[entry] = [net.acks(entry)[r][0] for r in refs]
    assert seqs == {"a": [1, 2, 3, 4, 5], "c": [6, 7, 8, 9, 10]}
    expected = [f"{e}{i}".encode() for e in "ac" for i in range(5)]
    for node in "abc":
        assert [d.payload for d in net.received(node, topic)] == expected
        assert [s for _, s in net.stamps(node, topic)] == list(range(1, 11))
    # One envelope per destination per turn, whatever else shares it, and one entry
    # per batch in it: [topic, first seq, epoch, n, batch].
    fanout_frames = Counter()
    for sent in net.sent:
        entries = [e for m in sent.messages if m[0] in (FANOUT, STORE) for e in m[1]]
        if entries:
            assert sent.src == "c" and len(entries) == 1 and entries[0][3] == 5
            fanout_frames[sent.dst] += 1
    assert fanout_frames == {"a": 2, "b": 2}
    forwards = [m for s in net.sent if s.src == "a" for m in s.messages if m[0] == FORWARD]
    assert [[e[1] for e in m[1]] for m in forwards] == [[5]]


@FAST
@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=5),
    entry=st.sampled_from("abc"),
    with_refs=st.booleans(),
)
def test_a_batch_is_one_seq_range_one_copy_per_node_and_one_ack(
    sizes: list[int], entry: str, with_refs: bool
) -> None:
    """Batches of n, published through any node: each gets n consecutive seqs and moves
    as one entry everywhere (those of a client that continue each other as one, from
    the node they entered on); a client's batches are acknowledged as one run."""
    net = cluster("abc")
    topic = topic_owned_by("c", "abc")
    for node in "ab":
        net.subscribe(node, exact_group(topic))
    net.run_until_quiet()
    before = len(net.sent)
    first_ref = net.refs(sum(sizes)) if with_refs else 0  # consecutive across the batches
    frames, ref = [], first_ref
    for i, n in enumerate(sizes):
        payloads = [b"%d.%d" % (i, j) for j in range(n)]
        frames.append(publish_entry(ref, topic, payloads, LEVEL_OWNER))
        ref += n if ref else 0
    net.publish_batch(entry, frames)
    net.run_until_quiet()
    sent = net.sent[before:]
    payloads = [[b"%d.%d" % (i, j) for j in range(n)] for i, n in enumerate(sizes)]
    if with_refs and entry != "c":  # small batches that continue each other travel as one
        assert sum(sizes) < JOIN_BELOW
        sizes, payloads = [sum(sizes)], [[p for batch in payloads for p in batch]]
    firsts = [1 + sum(sizes[:i]) for i in range(len(sizes))]
    blobs = [pack_batch(batch) for batch in payloads]
    # A copy to each node: a fanout entry, or to the replica a store entry that doubles
    # as its delivery copy.
    copied = [
        (s.dst, e[:5]) for s in sent for m in s.messages if m[0] in (FANOUT, STORE) for e in m[1]
    ]
    epoch = net.stamps("a", topic)[0][0]
    for node in "ab":
        copies = [e for dst, e in copied if dst == node]
        assert copies == [[topic, firsts[i], epoch, n, blobs[i]] for i, n in enumerate(sizes)], node
        assert net.stamps(node, topic) == [(epoch, s) for s in range(1, sum(sizes) + 1)]
    assert net.core("c").counters["owned_published"] == sum(sizes)
    assert net.core("c").counters["fanout_sent"] == 2 * sum(sizes)
    forwards = [e for s in sent for m in s.messages if m[0] == FORWARD for e in m[1]]
    acks = [e for s in sent for m in s.messages if m[0] == ACK for e in m[1]]
    if entry == "c":
        assert forwards == [] and acks == []
    else:
        assert [e[:3] for e in forwards] == [[topic, n, blobs[i]] for i, n in enumerate(sizes)]
        ack_ids = [e[3] for e in forwards]
        if with_refs:  # one fresh ack id per (joined) batch, one ack entry per batch
            assert len(set(ack_ids)) == len(sizes) and 0 not in ack_ids
            assert acks == [[a, firsts[i], 2, 2, sizes[i]] for i, a in enumerate(ack_ids)]
        else:
            assert set(ack_ids) == {0} and acks == []
    api_acks = [runs for kind, runs in ((f[0], f[1]) for f in net.frames(entry)) if kind == API_ACK]
    if with_refs:
        assert api_acks == [[[first_ref, 1, 2, 2, sum(sizes)]]]  # one run of every message
    else:
        assert api_acks == [] and net.frames(entry) == []
    assert net.core(entry).pending == 0


def test_a_batch_to_an_unreachable_owner_is_refused_whole() -> None:
    net = cluster("abc")
    topic = topic_owned_by("b", "abc")
    net.core("a").router.endpoint_of = lambda node: None  # no connection to the owner
    ref = net.publish_run("a", topic, [b"%d" % i for i in range(7)])
    net.run_until_quiet()
    nacks = [runs for kind, runs, *_ in net.frames("a") if kind == API_NACK]
    assert len(nacks) == 1 and [(r, c, n) for r, c, _, n in nacks[0]] == [(ref, E_NO_ROUTE, 7)]
    assert set(net.nacks("a")) == set(range(ref, ref + 7))
    assert net.entries(FORWARD) == [] and net.core("a").pending == 0
    assert net.core("a").flow.inflight.get("b", 0) == 0


# ---------------------------------------------------------------- forwarding


def split_views(net: SimNet, a: str, c: str) -> None:
    net.cut(a, c)
    wait_for(net, lambda: c not in net.core(a).ring and a not in net.core(c).ring)
    net.run_until_quiet()


def test_forward_to_a_non_owner_is_forwarded_again() -> None:
    net = cluster("abc")
    topic = topic_owned_by("c", "abc", among=("ab", "b"))
    net.subscribe("b", exact_group(topic))
    net.run_until_quiet()
    split_views(net, "a", "c")  # a's ring is {a, b}: a thinks b owns the topic
    assert net.core("a").ring.owner(topic) == "b" and net.core("b").ring.owner(topic) == "c"
    before = len(net.sent)
    ref = net.publish("a", topic, b"via b")
    net.run_until_quiet()
    hops = [(s.src, s.dst, e[4]) for s, e in net.entries(FORWARD) if net.sent.index(s) >= before]
    assert hops == [("a", "b", 1), ("b", "c", 2)]
    assert net.acks("a")[ref] == [1, 1, 1]
    assert [d.payload for d in net.received("b", topic)] == [b"via b"]


def test_a_relaying_hop_relays_a_batchs_ack_as_one_entry() -> None:
    net = cluster("abc")
    topic = topic_owned_by("c", "abc", among=("ab", "b"))
    net.subscribe("b", exact_group(topic))
    net.run_until_quiet()
    net.publish("a", topic, b"first")  # seq 1
    net.run_until_quiet()
    split_views(net, "a", "c")  # a forwards to b, b to c
    before = len(net.sent)
    payloads = [b"m%d" % i for i in range(4)]
    ref = net.publish_run("a", topic, payloads)
    net.run_until_quiet()
    sent = net.sent[before:]
    forwards = [
        (s.src, s.dst, e) for s in sent for m in s.messages if m[0] == FORWARD for e in m[1]
    ]
    assert [(src, dst, e[1], e[4]) for src, dst, e in forwards] == [
        ("a", "b", 4, 1),
        ("b", "c", 4, 2),
    ]
    acks = [(s.src, s.dst, e) for s in sent for m in s.messages if m[0] == ACK for e in m[1]]
    # c acks b's batch under b's ack id, b relays it to a under a's: one entry each.
    assert acks == [
        ("c", "b", [forwards[1][2][3], 2, 1, 1, 4]),
        ("b", "a", [forwards[0][2][3], 2, 1, 1, 4]),
    ]
    assert [f for f in net.frames("a") if f[0] == API_ACK][-1] == [API_ACK, [[ref, 2, 1, 1, 4]]]
    assert [d.payload for d in net.received("b", topic)] == [b"first", *payloads]
    assert net.core("a").pending == net.core("b").pending == 0


def line(names: list[str], topic: str) -> list[str]:
    """``names`` ordered so that each node's owner of ``topic`` among {prev, self, next} is next."""
    return list(reversed(HashRing(names).successors(topic, len(names))))


@pytest.mark.parametrize("length", [MAX_HOPS + 1, MAX_HOPS + 2])
def test_forwarding_is_bounded_by_max_hops(length: int) -> None:
    assert MAX_HOPS == 3  # PROTOCOL.md section 10
    topic = "x"
    chain = line([f"n{i}" for i in range(length)], topic)
    net = SimNet(config=CONFIG)
    for i, name in enumerate(chain):
        for other in chain[:i]:
            if other != chain[i - 1]:
                net.cut(name, other)  # each node only ever meets its neighbours
        net.add(name, [chain[i - 1]] if i else [])
    net.subscribe(chain[-1], exact_group(topic))
    net.advance(3.0)
    for i, name in enumerate(chain):
        expected = {chain[j] for j in (i - 1, i + 1) if 0 <= j < length}
        assert set(net.core(name).membership.alive()) == expected
        if i + 1 < length:
            assert net.core(name).ring.owner(topic) == chain[i + 1]
    before = len(net.sent)
    ref = net.ref()
    net.ref()
    net.ref()
    far = [b"far", b"farther", b"farthest"]
    net.publish_batch(chain[0], [publish_entry(ref, topic, far, LEVEL_OWNER)])
    net.run_until_quiet()
    forwards = [
        (s.src, s.dst, e[1], e[4]) for s, e in net.entries(FORWARD) if net.sent.index(s) >= before
    ]
    assert forwards == [(chain[i], chain[i + 1], 3, i + 1) for i in range(MAX_HOPS)]
    if length == MAX_HOPS + 1:  # the owner is exactly MAX_HOPS away: delivered
        assert net.acks(chain[0]) == {ref + i: [1 + i, 1, 1] for i in range(3)}
        assert [d.payload for d in net.received(chain[-1])] == far
    else:  # one hop too many: refused, the refusal travels back, for the whole batch
        assert net.acks(chain[0]) == {}
        (nacks,) = [runs for kind, runs in net.frames(chain[0]) if kind == API_NACK]
        assert [(r, c, n) for r, c, _, n in nacks] == [(ref, E_TOO_MANY_HOPS, 3)]
        assert net.received(chain[-1]) == []
        assert [s.src for s, _ in net.entries(NACK)] == list(reversed(chain[1 : MAX_HOPS + 1]))
    for name in chain:
        assert net.core(name).pending == 0
