"""Routing (zdps/core/routing.py), driven through the simulated cluster of NodeCores
(tests/core/node_net.py).

* A publish entering any node goes to the topic's owner (``ring.owner``), in one hop
  when views agree, and the owner sequences it: seq 1, 2, 3 ... without gaps whatever
  the entry node.
* When rings disagree a forward is forwarded again, at most ``MAX_HOPS`` times.
* A batch keeps its order, and everything one turn queues for a destination leaves in
  one frame.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.core.helpers import CONFIG, cluster, topic_owned_by
from tests.core.node_net import SimNet, wait_for
from zdps.core.ring import HashRing
from zdps.topics import exact_group, prefix_group
from zdps.wire import (
    E_TOO_MANY_HOPS,
    FANOUT,
    FORWARD,
    NACK,
    STORE,
)
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
    assert all(entry[3] == 1 for _, entry in forwards)  # one hop
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
        net.publish_batch(entry, [[r, topic, f"{entry}{i}".encode()] for i, r in enumerate(refs)])
        net.run_until_quiet()
        seqs[entry] = [net.acks(entry)[r][0] for r in refs]
    assert seqs == {"a": [1, 2, 3, 4, 5], "c": [6, 7, 8, 9, 10]}
    expected = [f"{e}{i}".encode() for e in "ac" for i in range(5)]
    for node in "abc":
        assert [d.payload for d in net.received(node, topic)] == expected
        assert [s for _, s in net.stamps(node, topic)] == list(range(1, 11))
    # One envelope per destination per turn, whatever else shares it.
    fanout_frames = Counter()
    for sent in net.sent:
        count = sum(len(m[1]) for m in sent.messages if m[0] in (FANOUT, STORE))
        if count:
            assert sent.src == "c" and count == 5
            fanout_frames[sent.dst] += 1
    assert fanout_frames == {"a": 2, "b": 2}
    forwards = [m for s in net.sent if s.src == "a" for m in s.messages if m[0] == FORWARD]
    assert [len(m[1]) for m in forwards] == [5]


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
    hops = [(s.src, s.dst, e[3]) for s, e in net.entries(FORWARD) if net.sent.index(s) >= before]
    assert hops == [("a", "b", 1), ("b", "c", 2)]
    assert net.acks("a")[ref] == [1, 1, 1]
    assert [d.payload for d in net.received("b", topic)] == [b"via b"]


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
    ref = net.publish(chain[0], topic, b"far")
    net.run_until_quiet()
    forwards = [
        (s.src, s.dst, e[3]) for s, e in net.entries(FORWARD) if net.sent.index(s) >= before
    ]
    assert forwards == [(chain[i], chain[i + 1], i + 1) for i in range(MAX_HOPS)]
    if length == MAX_HOPS + 1:  # the owner is exactly MAX_HOPS away: delivered
        assert net.acks(chain[0]) == {ref: [1, 1, 1]}
        assert [d.payload for d in net.received(chain[-1])] == [b"far"]
    else:  # one hop too many: refused, the refusal travels back
        assert net.acks(chain[0]) == {}
        assert net.nacks(chain[0])[ref][0] == E_TOO_MANY_HOPS
        assert net.received(chain[-1]) == []
        assert [s.src for s, _ in net.entries(NACK)] == list(reversed(chain[1 : MAX_HOPS + 1]))
    for name in chain:
        assert net.core(name).pending == 0
