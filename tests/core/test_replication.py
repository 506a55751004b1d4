"""Replication (zdps/core/replication.py): the books, and the rules they serve in the
simulated cluster (tests/core/node_net.py).

* The owner stores each message it sequences and sends a ``store`` copy to each of
  its ``R`` replicas (the next nodes on the ring); a replica confirms with ``stored``.
* Ack level ``replicated``: acked once every replica confirmed, with the message's
  seq; ``no_replica`` (not sequenced, not delivered) when there is no replica,
  ``replica_lost`` when a replica goes away first.
* A confirmation covers everything before it in its epoch, so a replica that missed a
  copy tells the owner (``stored`` seq 0) instead: the owner refuses that epoch's
  waiting publishes and starts a new epoch. A confirmation covers its own epoch only,
  and a publish stuck on a silent replica does not hold up later ones.
* After a ring change a holder sends a topic's history to the nodes newly in its
  placement and forgets its copy when it is no longer in it (``handoffs``; sent by
  handoff.py, see test_handoff.py).
"""

from __future__ import annotations

import pytest

from tests.core.helpers import cluster, placed, publish, stored
from tests.core.node_net import wait_for
from zdps.core.history import HistoryStore, Retention
from zdps.core.replication import Replication, Waiting
from zdps.core.ring import HashRing
from zdps.core.tunables import CoreConfig
from zdps.topics import exact_group
from zdps.wire import (
    E_NO_REPLICA,
    E_REPLICA_LOST,
    LEVEL_OWNER,
    STORE,
    STORED,
)
from zdps.wire.data import StoredEntry

pytestmark = pytest.mark.timeout(120)


def books(node: str, nodes: str, factor: int = 1) -> Replication:
    return Replication(node, HashRing(nodes), HistoryStore(Retention(100, 60.0)), factor)


# ---------------------------------------------------------------- the books


def test_replicas_are_the_next_distinct_nodes_after_the_owner() -> None:
    topic = placed("abcd", "bcd")
    assert books("a", "abcd", factor=2).replicas(topic) == ["c", "d"]
    assert books("a", "abcd", factor=1).replicas(topic) == ["c"]
    assert books("a", "abcd", factor=0).replicas(topic) == []
    assert books("a", "a").replicas(topic) == []


def test_confirmations_are_the_newest_entry_per_topic_and_owner_owed_once() -> None:
    replica = books("r", "opr")
    replica.stored("o", "t", 7, 1)
    replica.stored("o", "t", 7, 2)
    replica.stored("p", "u", 3, 1)
    assert replica.confirmations() == {"o": [StoredEntry("t", 7, 2)], "p": [StoredEntry("u", 3, 1)]}
    assert replica.confirmations() == {}


def test_a_replica_going_away_takes_only_the_publishes_that_waited_on_it() -> None:
    owner = books("o", "ors")
    owner.wait("t", Waiting(7, 1, (b"client", 1), 2, 1, {"r"}, 10.0))
    owner.wait("t", Waiting(7, 2, (b"client", 2), 2, 1, {"s"}, 10.0))
    assert [w.seq for w in owner.lost("r")] == [1]
    assert owner.lost("r") == [] and owner.pending == 1


def test_handoffs_send_to_nodes_newly_in_the_placement_and_drop_what_left_it() -> None:
    stays = placed("abc", "ca", then=("ab", "ab"))  # a stays in it, c is new
    leaves = placed("abc", "bc", then=("ab", "ba"))  # a leaves it, c is new
    holder = books("a", "abc")
    for topic in (stays, leaves):
        holder.history.store(topic, 1, 1, b"x", 0.0)
    sends, drops = holder.handoffs(frozenset("ab"))
    assert {node: sorted(topics) for node, topics in sends.items()} == {
        "c": sorted([stays, leaves])
    }
    assert drops == [leaves]


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


def test_a_lost_first_copy_of_a_new_epoch_is_not_confirmed() -> None:
    """A confirmation covers every earlier seq of its epoch: when the copy that opens an
    epoch is lost on the way, the next one's confirmation must not acknowledge it."""
    net = cluster("ab", CoreConfig(idle_topic_ttl=1.0))
    topic = placed("ab", "ab")
    publish(net, "a", topic, b"m0")
    net.run_until_quiet()
    net.advance(1.5)  # idle: the owner forgot the topic, the next publish opens an epoch
    net.cut("a", "b", both=False)
    lost = publish(net, "a", topic, b"m1")  # its store copy is lost on the cut link
    net.run_until_quiet()
    net.heal()
    after = publish(net, "a", topic, b"m2")
    net.run_until_quiet()
    assert [p for _, _, p in stored(net, "b", topic)] == [b"m0", b"m2"]
    assert after in net.acks("a") or after in net.nacks("a")
    assert lost not in net.acks("a")  # acked at level replicated, yet b never stored it


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
