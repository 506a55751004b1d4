"""Interest (zdps/core/interest.py): who a publish reaches, and with which copy.

* Exactly one copy per interested node (exact or prefix member, or both), none to
  nodes without interest, local delivery at the owner when it has a member. A batch
  of ``n`` messages is copied as one entry of ``n`` per node.
* A replica that also has subscribers gets one copy (``store`` with deliver), not two;
  a topic that keeps no history (retention 0) has no replicas, so its interested
  nodes all get a ``fanout``.
* What a topic reaches is cached until the overlay's version changes (or the ring:
  the owner then clears the cache).

Sans-IO tests drive ``InterestCache`` directly; the others run the simulated cluster
(tests/core/node_net.py).
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.helpers import FAST, cluster, placed, stored, topic_owned_by
from tests.core.node_net import SimNet
from zdps.core.history import HistoryStore
from zdps.core.interest import InterestCache
from zdps.core.overlay import Overlay
from zdps.core.replication import Replication
from zdps.core.ring import HashRing
from zdps.core.tunables import CoreConfig
from zdps.topics import exact_group, prefix_group
from zdps.wire import FANOUT, LEVEL_REPLICATED, STORE
from zdps.wire.data import Retention
from zdps.wire.gossip import Update

pytestmark = pytest.mark.timeout(120)


def endpoint(node: str) -> str:
    return f"inproc://{node}"


def interest_at(node: str = "a", nodes: str = "abc", replicas: int = 1) -> InterestCache:
    """``node``'s cache, its overlay knowing the other ``nodes`` as peers."""
    ring = HashRing(nodes)
    history = HistoryStore(Retention(100, 60.0))
    overlay = Overlay(node)
    for peer in nodes:
        overlay.peer_up(peer)
    replication = Replication(node, ring, history, replicas)
    return InterestCache(node, ring, overlay, endpoint, history, replication)


def subscribe(cache: InterestCache, node: str, group: bytes, count: int = 1) -> None:
    """``node`` has ``count`` members of ``group`` (as its ``update`` says)."""
    if node == cache.node:
        cache.overlay.join(group, count)
    else:
        cache.overlay.handle(node, Update({group: count}))


def copy_entries(net: SimNet, topic: str) -> list[tuple[str, list]]:
    """(destination, entry) of every copy of ``topic``'s batches sent for delivery: a
    fanout entry, or a store entry that doubles as the replica's delivery copy."""
    found = [(s.dst, e) for s, e in net.entries(FANOUT) if e[0] == topic]
    return found + [(s.dst, e) for s, e in net.entries(STORE) if e[0] == topic and e[5]]


def copies(net: SimNet, topic: str) -> Counter:
    """Copies of ``topic``'s messages sent for delivery, per destination node (a batch
    entry of n is n messages)."""
    found: Counter = Counter()
    for dst, entry in copy_entries(net, topic):
        found[dst] += entry[3]
    return found


# ---------------------------------------------------------------- InterestCache


def test_replicas_get_store_copies_instead_of_fanout() -> None:
    cache = interest_at("a", "abcd")
    topic = placed("abcd", "ab")
    subscribe(cache, "b", exact_group(topic))
    subscribe(cache, "c", prefix_group(topic[:1]), 2)
    subscribe(cache, "c", exact_group(topic))
    interest = cache.of(topic)
    assert (interest.nodes, interest.endpoints) == (["c"], [endpoint("c")])
    assert interest.replicas == [("b", endpoint("b"), True)]  # it delivers its copy
    assert (interest.local, interest.reached, interest.subscribers) == (False, 2, 4)
    subscribe(cache, "b", exact_group(topic), 0)  # the replica loses interest
    interest = cache.of(topic)
    assert interest.replicas == [("b", endpoint("b"), False)] and interest.reached == 1


def test_the_owner_delivers_locally_and_only_the_owner_has_replicas() -> None:
    owned, other = placed("abc", "ab"), placed("abc", "ba")
    cache = interest_at("a")
    for topic in (owned, other):
        subscribe(cache, "a", exact_group(topic))
    assert cache.of(owned).local and cache.of(owned).endpoints == []
    assert cache.of(owned).replicas == [("b", endpoint("b"), False)]
    assert cache.of(other).replicas == []  # not ours: no copies to make
    assert (cache.of(owned).reached, cache.of(other).reached) == (1, 1)


def test_the_cache_is_invalidated_by_the_overlay_version() -> None:
    cache = interest_at("a")
    topic = placed("abc", "ab")
    first = cache.of(topic)
    assert cache.of(topic) is first  # nothing changed: the cached one
    assert first.nodes == []
    subscribe(cache, "c", exact_group(topic))
    assert cache.of(topic).nodes == ["c"]
    cache.overlay.peer_down("c")
    assert cache.of(topic).nodes == []


def test_a_retention_of_0_means_no_replicas() -> None:
    cache = interest_at("a")
    topic = placed("abc", "ab")
    subscribe(cache, "b", exact_group(topic))
    assert cache.of(topic).replicas == [("b", endpoint("b"), True)]
    cache.history.configure(topic, Retention(0, 60.0), 0.0)
    interest = cache.of(topic)  # seen at once, however the retention changed
    assert interest.replicas == []
    assert (interest.nodes, interest.reached) == (["b"], 1)  # a fanout copy instead
    none_kept = interest_at("a")
    none_kept.history.default = Retention(0, 60.0)
    assert none_kept.of(topic).replicas == []


# ---------------------------------------------------------------- in the cluster


def test_exactly_one_copy_per_interested_node() -> None:
    net = cluster("abcde")
    topic = topic_owned_by("a", "abcde")
    net.subscribe("a", exact_group(topic))  # the owner has a member: local delivery
    net.subscribe("b", exact_group(topic))
    net.subscribe("c", prefix_group(topic[:1]))
    for group in (exact_group(topic), prefix_group(""), exact_group(topic)):
        net.subscribe("d", group)  # exact twice and the firehose: still one node
    net.subscribe("e", exact_group(topic + "x"))  # e has no interest in topic
    net.run_until_quiet()
    refs = [net.publish(entry, topic, entry.encode()) for entry in "abcde"]
    net.run_until_quiet()
    assert copies(net, topic) == {"b": 5, "c": 5, "d": 5}
    assert all(s.src == "a" for s, _ in net.entries(FANOUT))
    for node in "abcd":
        assert len(net.received(node, topic)) == 5
    assert net.received("e") == []
    acks = [net.acks(entry)[ref] for entry, ref in zip("abcde", refs, strict=True)]
    assert sorted(seq for seq, _, _ in acks) == [1, 2, 3, 4, 5]
    # nodes: b, c, d and the owner itself; subscribers: 1 + 1 + 3 + 1.
    assert {(nodes, subscribers) for _, nodes, subscribers in acks} == {(4, 6)}


def test_no_copy_at_all_without_interest() -> None:
    net = cluster("abc")
    topic = topic_owned_by("b", "abc")
    net.subscribe("c", exact_group(topic + ".other"))
    net.run_until_quiet()
    ref = net.publish("a", topic, b"x")
    net.run_until_quiet()
    assert net.entries(FANOUT) == []
    assert net.deliveries == {"a": [], "b": [], "c": []}
    assert net.acks("a") == {ref: [1, 0, 0]}


def test_prefix_members_get_every_topic_under_the_prefix() -> None:
    net = cluster("abc")
    net.subscribe("b", prefix_group("news."))
    net.subscribe("c", exact_group("news.eu"))
    net.run_until_quiet()
    topics = ["news.eu", "news.us.east", "news.", "news", "newsx", "sports.news.x"]
    refs = {t: net.publish("a", t, t.encode()) for t in topics}
    net.run_until_quiet()
    assert [d.topic for d in net.received("b")] == ["news.eu", "news.us.east", "news."]
    assert [d.topic for d in net.received("c")] == ["news.eu"]
    assert copies(net, "news.eu") == {n: 1 for n in "bc" if n != net.owner("news.eu")}
    acks = net.acks("a")
    assert acks[refs["news.eu"]][1:] == [2, 2]
    assert acks[refs["news.us.east"]][1:] == [1, 1]
    assert acks[refs["newsx"]][1:] == [0, 0]


@FAST
@given(
    subscribers=st.sets(st.sampled_from("abcd")),
    entry=st.sampled_from("abcd"),
    replicas=st.integers(1, 2),
    count=st.integers(1, 4),
    size=st.integers(1, 3),
)
def test_a_replica_with_subscribers_gets_one_copy_and_delivers_it(
    subscribers: set[str], entry: str, replicas: int, count: int, size: int
) -> None:
    """``count`` batches of ``size``: one copy entry of ``size`` per batch per node."""
    net = cluster("abcd", CoreConfig(replicas=replicas))
    topic = "topic"
    owner, *copies_at = HashRing("abcd").successors(topic, replicas + 1)
    for node in sorted(subscribers):
        net.subscribe(node, exact_group(topic))
    net.run_until_quiet()
    batches = [[b"%d.%d" % (i, j) for j in range(size)] for i in range(count)]
    refs = [net.publish_run(entry, topic, payloads, LEVEL_REPLICATED) for payloads in batches]
    net.run_until_quiet()
    payloads = [p for b in batches for p in b]
    for node in "abcd":
        got = [d.payload for d in net.received(node, topic)]
        assert got == (payloads if node in subscribers else []), node
    expected = Counter({n: count * size for n in subscribers if n != owner})
    assert copies(net, topic) == expected
    assert Counter(dst for dst, _ in copy_entries(net, topic)) == Counter(
        {n: count for n in subscribers if n != owner}  # one entry per batch
    )
    for replica in copies_at:
        assert [p for _, _, p in stored(net, replica, topic)] == payloads
        to_replica = [e for s, e in net.entries(STORE) if s.dst == replica]
        assert [(e[3], e[5]) for e in to_replica] == [(size, replica in subscribers)] * count
        assert [e for s, e in net.entries(FANOUT) if s.dst == replica] == []
    acks = net.acks(entry)
    assert [acks[ref + j] for ref in refs for j in range(size)] == [
        [i + 1, len(subscribers), len(subscribers)] for i in range(count * size)
    ]
