"""History replication, driven through the simulated cluster (tests/core/node_net.py).

* The owner stores each message it sequences and sends a ``store`` copy to each of
  its ``R`` replicas (the next nodes on the ring); a replica confirms with ``stored``.
* Ack level ``replicated``: acked once every replica confirmed, with the message's
  seq; ``no_replica`` (not sequenced, not delivered) when there is no replica,
  ``replica_lost`` when a replica goes away first.
* Ring changes hand the history to the nodes newly in a topic's placement; a holder
  no longer in it forgets it. A new owner's epochs stay above every stored epoch.
* ``create`` sets a topic's retention at the owner and its replicas; ``delete`` drops
  the history everywhere; ``history`` reads it from the owner through any node.
* A replica that also has subscribers gets one copy (``store`` with deliver), not two.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.core.node_net import WALL_START_NS, SimNet, mesh, wait_for
from zdps.core.history import HistoryStore, Retention
from zdps.core.replication import Replication, Waiting
from zdps.core.ring import HashRing
from zdps.core.sequencing import Sequencer
from zdps.core.tunables import CoreConfig
from zdps.topics import exact_group
from zdps.wire import (
    CLOSED,
    CONSUMED,
    E_MALFORMED,
    E_NO_REPLICA,
    E_REPLICA_LOST,
    FANOUT,
    HANDOFF,
    LEVEL_OWNER,
    LEVEL_REPLICATED,
    STORE,
    STORED,
)
from zdps.wire.data import StoredEntry

pytestmark = pytest.mark.timeout(120)

DEFAULT = Retention(CoreConfig().history, CoreConfig().history_ttl)
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- helpers


def cluster(names: str, config: CoreConfig | None = None) -> SimNet:
    return mesh(names, config or CoreConfig())


def placed(nodes: str, placement: str, prefix: str = "t", then=None) -> str:
    """The first ``<prefix><i>`` whose owner and replicas on a ring of ``nodes`` are
    ``placement``, in order; with ``then=(nodes2, placement2)`` also that on ``nodes2``."""
    for i in range(50_000):
        topic = f"{prefix}{i}"
        if HashRing(nodes).successors(topic, len(placement)) != list(placement):
            continue
        if then is None or HashRing(then[0]).successors(topic, len(then[1])) == list(then[1]):
            return topic
    raise AssertionError("no such topic")


def publish(net: SimNet, node: str, topic: str, payload: bytes, level: int = LEVEL_REPLICATED):
    """A client of ``node`` publishes at ack ``level``; returns the ref."""
    ref = net.ref()
    net.publish_batch(node, [[ref, topic, payload, level]])
    return ref


def stored(net: SimNet, node: str, topic: str) -> list[tuple[int, int, bytes]]:
    """``(epoch, seq, payload)`` of what ``node`` holds of ``topic``'s history."""
    history = net.core(node).history.topics.get(topic)
    return [(e.epoch, e.seq, e.payload) for e in history.entries] if history else []


def history(net: SimNet, node: str, topic: str, **args) -> dict:
    """A client of ``node`` asks for ``topic``'s history; the (successful) result."""
    ref = net.request(node, "history", {"topic": topic, **args})
    net.run_until_quiet()
    ok, result = net.replies(node)[ref]
    assert ok, result
    return result


def history_epoch(net: SimNet, topic: str) -> int:
    """The epoch the topic's owner is sequencing it in."""
    return net.core(net.owner(topic)).sequencer.epoch(topic)


def copies(net: SimNet, topic: str) -> Counter:
    """Copies of ``topic``'s messages sent for delivery, per destination node."""
    found = Counter(s.dst for s, e in net.entries(FANOUT) if e[0] == topic)
    found.update(s.dst for s, e in net.entries(STORE) if e[0] == topic and e[4])
    return found


# ---------------------------------------------------------------- ack level replicated


@pytest.mark.parametrize("entry", ["a", "b", "c"])  # the owner, the replica, neither
def test_a_replicated_publish_is_acked_only_after_the_replica_confirmed(entry: str) -> None:
    net = cluster("abc")
    topic = placed("abc", "ab")
    net.subscribe("c", exact_group(topic))
    net.run_until_quiet()
    plain = [publish(net, entry, topic, b"plain", LEVEL_OWNER) for _ in range(2)]
    net.run_until_quiet()
    assert [net.acks(entry)[ref] for ref in plain] == [[1, 1, 1], [2, 1, 1]]

    net.hold("b", "a")
    ref = publish(net, entry, topic, b"kept")
    if entry == "b":  # the forward itself goes b -> a: let that one through
        net.run_until_quiet()
        net.deliver(("b", net.endpoint("a")))
    net.run_until_quiet()
    epoch = stored(net, "a", topic)[0][0]
    assert stored(net, "b", topic) == [
        (epoch, 1, b"plain"),
        (epoch, 2, b"plain"),
        (epoch, 3, b"kept"),
    ]
    assert [e for s, e in net.entries(STORE) if s.dst == "b"][-1] == [
        topic,
        3,
        epoch,
        b"kept",
        False,
    ]
    confirmations = [m for m in net.held("b", "a") if m[0] == STORED]
    assert confirmations == [[STORED, [[topic, epoch, 3]]]]
    assert ref not in net.acks(entry) and ref not in net.nacks(entry)
    assert net.core("a").pending == 1
    if entry != "b":  # (b's next forward would queue behind its confirmation)
        # An owner-level publish meanwhile does not wait for anything.
        quick = publish(net, entry, topic, b"quick", LEVEL_OWNER)
        net.run_until_quiet()
        assert net.acks(entry)[quick] == [4, 1, 1]
        assert ref not in net.acks(entry)

    net.release("b", "a")
    net.run_until_quiet()
    assert net.acks(entry)[ref] == [3, 1, 1]
    assert ref not in net.nacks(entry)
    assert net.core("a").pending == 0
    expected = [b"plain", b"plain", b"kept"] + ([b"quick"] if entry != "b" else [])
    assert [d.payload for d in net.received("c", topic)] == expected


def test_a_lone_node_refuses_replicated_publishes_without_sequencing_them() -> None:
    net = cluster("a")
    net.subscribe("a", exact_group("t"))
    net.run_until_quiet()
    refused = publish(net, "a", "t", b"nowhere to copy")
    net.run_until_quiet()
    assert net.nacks("a")[refused][0] == E_NO_REPLICA
    assert refused not in net.acks("a")
    assert net.received("a", "t") == []
    assert stored(net, "a", "t") == []
    assert len(net.core("a").sequencer) == 0
    assert net.core("a").counters["owned_published"] == 0

    accepted = publish(net, "a", "t", b"owner is enough", LEVEL_OWNER)
    net.run_until_quiet()
    assert net.acks("a")[accepted] == [1, 1, 1]  # seq 1: the refused one took no seq
    assert [d.payload for d in net.received("a", "t")] == [b"owner is enough"]
    assert net.stamps("a", "t")[0][1] == 1
    assert [(s, p) for _, s, p in stored(net, "a", "t")] == [(1, b"owner is enough")]


def test_with_no_replicas_configured_replicated_means_owner() -> None:
    net = cluster("ab", CoreConfig(replicas=0))
    topic = placed("ab", "a")
    ref = publish(net, "b", topic, b"x")
    net.run_until_quiet()
    assert net.acks("b")[ref] == [1, 0, 0]
    assert net.entries(STORE) == []
    assert [p for _, _, p in stored(net, "a", topic)] == [b"x"]
    assert stored(net, "b", topic) == []


@pytest.mark.parametrize("store_arrived", [True, False])
def test_a_replica_dying_before_it_confirmed_gives_replica_lost(store_arrived: bool) -> None:
    net = cluster("abc")
    topic = placed("abc", "ab")
    if store_arrived:
        net.hold("b", "a")  # b stores the copy, its confirmation never leaves
    else:
        net.hold("a", "b")  # the copy never reaches b
    ref = publish(net, "c", topic, b"x")
    net.run_until_quiet()
    assert len(stored(net, "b", topic)) == (1 if store_arrived else 0)
    assert net.core("a").pending == 1
    crashed_at = net.clock
    net.crash("b")
    net.release("b", "a")
    net.release("a", "b")
    wait_for(net, lambda: ref in net.nacks("c"))
    assert net.nacks("c")[ref][0] == E_REPLICA_LOST
    assert net.clock - crashed_at < net.config.ack_timeout  # not a timeout
    assert ref not in net.acks("c")
    assert net.core("a").pending == 0
    assert net.core("c").pending == 0


# ---------------------------------------------------------------- owner changes


def start_skewed(net: SimNet, node: str, seconds: float) -> None:
    """Start ``node`` with a clock ``seconds`` ahead: its epochs are that much larger."""
    net.add(node)
    net.nodes[node].incarnation = WALL_START_NS + int(seconds * 1e9)
    net.restart(node)


def test_the_replica_takes_over_with_the_history_and_larger_epochs() -> None:
    net = SimNet()
    start_skewed(net, "a", 1000.0)  # the first owner's epochs are far ahead of b's clock
    net.add("b", ["a"])
    net.add("c", ["a"])
    net.settle()
    topic = placed("abc", "ab")
    net.subscribe("c", exact_group(topic))
    net.run_until_quiet()
    refs = [publish(net, "c", topic, b"old%d" % i) for i in range(4)]
    net.run_until_quiet()
    assert [net.acks("c")[ref][0] for ref in refs] == [1, 2, 3, 4]
    old = stored(net, "a", topic)
    (old_epoch,) = {epoch for epoch, _, _ in old}
    assert stored(net, "b", topic) == old

    net.crash("a")
    net.settle()
    assert net.core("c").ring.owner(topic) == "b"
    expected = [[old_epoch, i + 1, b"old%d" % i] for i in range(4)]
    for node in "bc":
        result = history(net, node, topic, after=[0, 0])
        assert (result["node"], result["entries"], result["more"]) == ("b", expected, False)
    assert stored(net, "c", topic) == old  # b handed it to its new replica, c

    # Without the history, b would have started an epoch below a's.
    b = net.core("b")
    assert Sequencer(b.incarnation // 1_000_000, b.started).stamp(topic, net.clock)[0] < old_epoch
    ref = publish(net, "c", topic, b"new")
    net.run_until_quiet()
    assert net.acks("c")[ref][0] == 1
    (new_epoch, seq) = net.stamps("c", topic)[-1]
    assert seq == 1 and new_epoch > old_epoch
    assert stored(net, "b", topic)[-1] == (new_epoch, 1, b"new")
    assert stored(net, "c", topic) == stored(net, "b", topic)


def test_a_joining_owner_receives_the_history_and_a_dropped_holder_forgets_it() -> None:
    net = cluster("ab")
    topic = placed("abc", "ca", then=("ab", "ab"))
    for i in range(3):
        publish(net, "b", topic, b"m%d" % i)
    net.run_until_quiet()
    old = stored(net, "a", topic)
    assert len(old) == 3 and stored(net, "b", topic) == old

    net.add("c", ["a"])
    net.settle()
    assert stored(net, "c", topic) == old
    assert stored(net, "a", topic) == old  # still a replica
    assert topic not in net.core("b").history.held()  # out of the placement: forgotten
    senders = {s.src for s, e in net.entries(HANDOFF) if s.dst == "c" and e[0] == topic}
    assert senders == {"a", "b"}  # both former holders sent it; c kept one copy each
    for node in "abc":
        result = history(net, node, topic, since=0)
        assert result["node"] == "c"
        assert [(e, s, p) for e, s, p in result["entries"]] == old

    ref = publish(net, "b", topic, b"after")
    net.run_until_quiet()
    assert net.acks("b")[ref][0] == 1
    epoch, seq, payload = stored(net, "c", topic)[-1]
    assert (seq, payload) == (1, b"after") and epoch > old[-1][0]
    assert stored(net, "a", topic)[-1] == (epoch, 1, b"after")
    assert stored(net, "b", topic) == []


# ---------------------------------------------------------------- create and delete


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


def test_create_with_a_ttl_expires_history_at_owner_and_replica() -> None:
    net = cluster("ab")
    topic = placed("ab", "ab")
    net.request("b", "create", {"topic": topic, "history": 100, "ttl": 2})
    net.run_until_quiet()
    early = net.clock
    publish(net, "b", topic, b"early")
    net.run_until_quiet()
    net.advance(1.5)
    late = net.clock
    publish(net, "b", topic, b"late")
    net.run_until_quiet()

    def kept() -> list[list[bytes]]:
        return [[p for _, _, p in stored(net, node, topic)] for node in "ab"]

    assert kept() == [[b"early", b"late"]] * 2
    wait_for(net, lambda: kept() == [[b"late"]] * 2, step=0.01)
    assert early + 2.0 <= net.clock <= early + 3.3  # swept about once a second
    assert history(net, "b", topic, since=0)["entries"] == [[history_epoch(net, topic), 2, b"late"]]
    wait_for(net, lambda: kept() == [[], []], step=0.01)
    assert late + 2.0 <= net.clock <= late + 3.3
    assert history(net, "b", topic, since=0)["entries"] == []


@pytest.mark.parametrize("args", [{"history": -1, "ttl": 5}, {"history": 5, "ttl": 0}, {"ttl": 5}])
def test_create_refuses_a_bad_retention(args: dict) -> None:
    net = cluster("ab")
    ref = net.request("a", "create", {"topic": "t", **args})
    net.run_until_quiet()
    assert net.replies("a")[ref][0] is False
    assert net.replies("a")[ref][1]["code"] == E_MALFORMED
    assert all("t" not in net.core(n).history.configured for n in "ab")


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


# ---------------------------------------------------------------- history requests


@FAST
@given(
    epochs=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    since=st.integers(0, 7),
    limit=st.integers(1, 6),
)
def test_history_since_after_limit_and_paging(epochs: list[int], since: int, limit: int) -> None:
    net = cluster("ab", CoreConfig(idle_topic_ttl=1.0))
    topic = placed("ab", "ab")
    for count in epochs:  # each run of publishes after an idle pause opens a new epoch
        for i in range(count):
            publish(net, "b", topic, b"%d" % i, LEVEL_OWNER)
        net.run_until_quiet()
        net.advance(1.5)
    everything = [list(entry) for entry in stored(net, "a", topic)]
    assert len(everything) == sum(epochs)
    assert len({e for e, _, _ in everything}) == len(epochs)
    newest = everything[-1][0]

    result = history(net, "b", topic, since=since, limit=limit)
    if since == 0:
        wanted = everything
    else:
        wanted = [e for e in everything if e[0] == newest and e[1] >= since]
    assert result["node"] == "a"
    assert result["entries"] == wanted[:limit]
    assert result["more"] == (bool(wanted[:limit]) and wanted[:limit][-1] != everything[-1])

    pages, after = [], [0, 0]
    while True:
        page = history(net, "b", topic, after=after, limit=limit)
        assert 1 <= len(page["entries"]) <= limit
        pages += page["entries"]
        after = page["entries"][-1][:2]
        if not page["more"]:
            break
    assert pages == everything
    assert history(net, "b", topic, after=after, limit=limit) == {
        "topic": topic,
        "node": "a",
        "entries": [],
        "more": False,
    }


def test_history_of_a_topic_without_messages_is_empty() -> None:
    net = cluster("ab")
    for node in "ab":
        for args in ({"since": 0}, {"since": 3}, {"after": [0, 0]}):
            result = history(net, node, "nothing", **args)
            assert (result["entries"], result["more"]) == ([], False)


# ---------------------------------------------------------------- one copy per node


@FAST
@given(
    subscribers=st.sets(st.sampled_from("abcd")),
    entry=st.sampled_from("abcd"),
    replicas=st.integers(1, 2),
    count=st.integers(1, 4),
)
def test_a_replica_with_subscribers_gets_one_copy_and_delivers_it(
    subscribers: set[str], entry: str, replicas: int, count: int
) -> None:
    net = cluster("abcd", CoreConfig(replicas=replicas))
    topic = "topic"
    owner, *copies_at = HashRing("abcd").successors(topic, replicas + 1)
    for node in sorted(subscribers):
        net.subscribe(node, exact_group(topic))
    net.run_until_quiet()
    refs = [publish(net, entry, topic, b"%d" % i) for i in range(count)]
    net.run_until_quiet()
    payloads = [b"%d" % i for i in range(count)]
    for node in "abcd":
        got = [d.payload for d in net.received(node, topic)]
        assert got == (payloads if node in subscribers else []), node
    expected = Counter({n: count for n in subscribers if n != owner})
    assert copies(net, topic) == expected
    for replica in copies_at:
        assert [p for _, _, p in stored(net, replica, topic)] == payloads
        to_replica = [e for s, e in net.entries(STORE) if s.dst == replica]
        assert [e[4] for e in to_replica] == [replica in subscribers] * count
        assert [e for s, e in net.entries(FANOUT) if s.dst == replica] == []
    acks = net.acks(entry)
    assert [acks[ref] for ref in refs] == [
        [i + 1, len(subscribers), len(subscribers)] for i in range(count)
    ]


# ---------------------------------------------------------------- netsplit


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lone=st.integers(1, 4), pair=st.integers(1, 4), via=st.sampled_from("bc"))
def test_a_healed_netsplit_merges_both_sides_history_at_the_owner(
    lone: int, pair: int, via: str
) -> None:
    net = cluster("abc")
    topic = placed("abc", "ab")
    for i in range(2):
        publish(net, "c", topic, b"before%d" % i)
    net.run_until_quiet()
    for other in "bc":
        net.cut("a", other)
    wait_for(net, lambda: net.views() == {"a": set(), "b": {"c"}, "c": {"b"}})
    net.run_until_quiet()
    lone_refs = [publish(net, "a", topic, b"lone%d" % i, LEVEL_OWNER) for i in range(lone)]
    net.run_until_quiet()
    net.advance(0.3)
    pair_refs = [publish(net, via, topic, b"pair%d" % i) for i in range(pair)]
    net.run_until_quiet()
    assert all(ref in net.acks("a") for ref in lone_refs)
    assert all(ref in net.acks(via) for ref in pair_refs)  # both sides sequenced

    net.heal()
    wait_for(net, net.converged)
    net.run_until_quiet()
    merged = stored(net, "a", topic)
    payloads = sorted(p for _, _, p in merged)
    assert payloads == sorted(
        [b"before%d" % i for i in range(2)]
        + [b"lone%d" % i for i in range(lone)]
        + [b"pair%d" % i for i in range(pair)]
    )
    stamps = [(e, s) for e, s, _ in merged]
    assert stamps == sorted(set(stamps))
    assert stored(net, "b", topic) == merged  # the replica got the owner's side too
    assert topic not in net.core("c").history.held()

    ref = publish(net, "c", topic, b"healed")
    net.run_until_quiet()
    assert net.acks("c")[ref][0] == 1  # a new epoch, at seq 1
    epoch, seq, payload = stored(net, "a", topic)[-1]
    assert payload == b"healed" and seq == 1
    assert epoch > max(e for e, _ in stamps)


def test_a_replica_that_missed_a_copy_tells_the_owner_instead_of_confirming() -> None:
    """A confirmation covers everything before it: after a hole (a copy lost on the way)
    the epoch's later copies must not acknowledge the missing one; the owner is told."""
    books = Replication("r", HashRing(["o", "r"]), HistoryStore(Retention(100, 60.0)))
    for seq in (1, 2):
        books.stored("o", "t", 7, seq)
    assert books.confirmations() == {"o": [StoredEntry("t", 7, 2)]}
    books.stored("o", "t", 7, 4)  # 3 never arrived
    books.stored("o", "t", 7, 5)
    books.stored("o", "u", 7, 1)  # other topics are not affected
    assert books.confirmations() == {"o": [StoredEntry("u", 7, 1), StoredEntry("t", 7, 0)]}
    books.stored("o", "t", 7, 6)
    assert books.confirmations() == {}
    books.stored("o", "t", 8, 1)  # the owner's new epoch is confirmed again
    assert books.confirmations() == {"o": [StoredEntry("t", 8, 1)]}


def test_an_owner_told_of_a_missed_copy_refuses_and_starts_a_new_epoch() -> None:
    net = cluster("ab")
    topic = placed("ab", "ab")
    owner = net.core("a")
    refs = [publish(net, "a", topic, b"m%d" % i) for i in range(2)]
    net.run_until_quiet()
    assert [net.acks("a")[r][0] for r in refs] == [1, 2]
    epoch = owner.sequencer.epoch(topic)
    net.hold("b", "a")  # b's confirmation of the next one waits
    waiting = publish(net, "a", topic, b"m2")
    net.run_until_quiet()
    net.inject("a", net.envelope("b", [[STORED, [[topic, epoch, 0]]]]))  # b missed a copy
    net.release("b", "a")
    net.run_until_quiet()
    assert net.nacks("a")[waiting][0] == E_REPLICA_LOST
    assert waiting not in net.acks("a")  # the late confirmation acknowledges nothing
    after = publish(net, "a", topic, b"m3")
    net.run_until_quiet()
    assert net.acks("a")[after][0] == 1  # seq 1 of a new epoch
    assert owner.sequencer.epoch(topic) > epoch


def test_a_publish_stuck_on_a_silent_replica_does_not_hold_up_later_ones() -> None:
    """After a ring change the oldest waiting publish may depend on a replica that will
    never confirm it; later ones, confirmed by the new replica, are acked at once."""
    books = Replication("o", HashRing(["o", "r", "n"]), HistoryStore(Retention(100, 60.0)))
    for seq, replica in ((1, "r"), (2, "n"), (3, "n")):
        books.wait("t", Waiting(7, seq, (b"client", seq), 2, 1, {replica}, 10.0))
    assert [w.seq for w in books.confirmed("n", "t", 7, 3)] == [2, 3]
    assert books.confirmed("n", "t", 8, 5) == []  # another epoch confirms nothing here
    assert [w.seq for w in books.expired(10.0)] == [1]
    assert books.pending == 0
