"""Replication (zdps/core/replication.py): the books, and the rules they serve in the
simulated cluster (tests/core/node_net.py).

* The owner stores each message it sequences and sends a ``store`` copy to each of
  its ``R`` replicas (the next nodes on the ring); a replica confirms with ``stored``.
* Messages travel in batches: a batch of ``n`` gets seqs ``seq``..``seq + n - 1``,
  one ``store`` copy per replica, and one ``Waiting``; a replica's confirmation of a
  batch is its last seq, and the next batch of the epoch must start right after it.
* Ack level ``replicated``: acked once every replica confirmed, with the message's
  seq (a batch: all its messages at once, once its last seq is confirmed);
  ``no_replica`` (not sequenced, not delivered) when there is no replica,
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
from hypothesis import given, settings
from hypothesis import strategies as st

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
    LEVEL_REPLICATED,
    STORE,
    STORED,
)
from zdps.wire.batches import pack_batch
from zdps.wire.data import StoredEntry

pytestmark = pytest.mark.timeout(120)


def books(node: str, nodes: str, factor: int = 1) -> Replication:
    return Replication(node, HashRing(nodes), HistoryStore(Retention(100, 60.0)), factor)


def waiting(seq: int, replicas: set[str], n: int = 1, epoch: int = 7) -> Waiting:
    """A batch of ``n`` from ``seq`` on waiting for ``replicas``; its route names ``seq``."""
    return Waiting(epoch, seq, n, (b"client", seq), 2, 1, replicas, 10.0)


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


def test_a_replica_confirming_a_batch_confirms_its_last_seq() -> None:
    replica = books("r", "or")
    replica.stored("o", "t", 7, 1, 3)
    assert replica.confirmations() == {"o": [StoredEntry("t", 7, 3)]}
    replica.stored("o", "t", 7, 4, 2)
    replica.stored("o", "t", 7, 6, 1)
    assert replica.confirmations() == {"o": [StoredEntry("t", 7, 6)]}


@settings(max_examples=100, deadline=None)
@given(sizes=st.lists(st.integers(1, 6), min_size=1, max_size=10), turns=st.data())
def test_consecutive_batches_are_confirmed_up_to_the_newest_last_seq(
    sizes: list[int], turns: st.DataObject
) -> None:
    replica = books("r", "or")
    seq, owed = 1, False
    for n in sizes:
        replica.stored("o", "t", 7, seq, n)
        seq, owed = seq + n, True
        if turns.draw(st.booleans(), label="turn ends"):
            assert replica.confirmations() == {"o": [StoredEntry("t", 7, seq - 1)]}
            owed = False
    assert replica.confirmations() == ({"o": [StoredEntry("t", 7, seq - 1)]} if owed else {})
    assert replica.confirmations() == {}


def test_a_replica_going_away_takes_only_the_publishes_that_waited_on_it() -> None:
    owner = books("o", "ors")
    owner.wait("t", waiting(1, {"r"}))
    owner.wait("t", waiting(2, {"s"}, n=3))
    assert [w.seq for w in owner.lost("r")] == [1]
    assert owner.lost("r") == [] and owner.pending == 3  # the batch of 3 still waits


def test_handoffs_send_to_nodes_newly_in_the_placement_and_drop_what_left_it() -> None:
    stays = placed("abc", "ca", then=("ab", "ab"))  # a stays in it, c is new
    leaves = placed("abc", "bc", then=("ab", "ba"))  # a leaves it, c is new
    holder = books("a", "abc")
    for topic in (stays, leaves):
        holder.history.store(topic, 1, 1, 1, pack_batch([b"x"]), 0.0)
    sends, drops = holder.handoffs(frozenset("ab"))
    assert {node: sorted(topics) for node, topics in sends.items()} == {
        "c": sorted([stays, leaves])
    }
    assert drops == [leaves]


def test_a_replica_that_missed_a_copy_tells_the_owner_instead_of_confirming() -> None:
    """A confirmation covers everything before it: after a gap (a copy lost on the way)
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


def test_with_batches_the_next_batch_must_start_right_after_the_last_one() -> None:
    books = Replication("r", HashRing(["o", "r"]), HistoryStore(Retention(100, 60.0)))
    books.stored("o", "t", 7, 1, 3)
    books.stored("o", "t", 7, 4, 2)  # 4 follows 3
    assert books.confirmations() == {"o": [StoredEntry("t", 7, 5)]}
    books.stored("o", "t", 7, 5, 2)  # overlaps 5: not the next one either
    books.stored("o", "t", 7, 7, 1)
    assert books.confirmations() == {"o": [StoredEntry("t", 7, 0)]}
    books.stored("o", "t", 8, 2, 2)  # a new epoch must start at 1: its first was lost
    assert books.confirmations() == {"o": [StoredEntry("t", 8, 0)]}
    books.stored("o", "t", 9, 1, 4)
    books.stored("o", "t", 9, 6, 1)  # 5 is missing
    assert books.confirmations() == {"o": [StoredEntry("t", 9, 4), StoredEntry("t", 9, 0)]}
    newcomer = Replication("n", HashRing(["o", "n"]), HistoryStore(Retention(100, 60.0)))
    newcomer.stored("o", "t", 9, 6, 3)  # new to the placement: may start anywhere
    newcomer.stored("o", "t", 9, 9, 2)
    assert newcomer.confirmations() == {"o": [StoredEntry("t", 9, 10)]}


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 5), min_size=2, max_size=8),
    at=st.integers(1, 7),
    shift=st.integers(-4, 4),
)
def test_a_batch_not_starting_right_after_the_last_is_a_gap(
    sizes: list[int], at: int, shift: int
) -> None:
    """The batch ``at`` starts ``shift`` away from where it should (0: no gap)."""
    at = min(at, len(sizes) - 1)
    replica = books("r", "or")
    seq, confirmed = 1, 0
    for i, n in enumerate(sizes):
        if i == at:
            seq = max(1, seq + shift)
        replica.stored("o", "t", 7, seq, n)
        seq += n
        if i < at:
            confirmed = seq - 1
    total, gap = sum(sizes), shift != 0
    assert (seq - 1 != total) == gap  # the batch at ``at`` did not start at its place
    expected = (
        [StoredEntry("t", 7, confirmed), StoredEntry("t", 7, 0)]
        if gap
        else [StoredEntry("t", 7, total)]
    )
    assert replica.confirmations() == {"o": expected}
    replica.stored("o", "t", 7, seq, 1)  # in order after the gap: still not confirmed
    assert replica.confirmations() == ({} if gap else {"o": [StoredEntry("t", 7, seq)]})


def test_a_waiting_batch_is_acked_whole_once_its_last_seq_is_confirmed() -> None:
    books = Replication("o", HashRing(["o", "r", "s"]), HistoryStore(Retention(100, 60.0)), 2)
    books.wait("t", waiting(1, {"r", "s"}, n=3))
    books.wait("t", waiting(4, {"r", "s"}, n=2))
    assert books.confirmed("r", "t", 7, 2) == []  # the middle of the first batch
    assert books.confirmed("s", "t", 7, 4) == []  # all of the first, part of the second
    assert books.confirmed("r", "t", 7, 3) == [waiting(1, set(), n=3)]  # once, whole
    assert books.confirmed("r", "t", 7, 3) == []
    assert books.pending == 2  # the messages of the second batch
    assert books.confirmed("s", "t", 7, 5) == []  # r has not confirmed 5 yet
    assert books.confirmed("r", "t", 7, 9) == [waiting(4, set(), n=2)]
    assert books.pending == 0


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=8),
    confirm=st.integers(0, 45),
)
def test_a_confirmation_acks_exactly_the_batches_it_covers_whole(
    sizes: list[int], confirm: int
) -> None:
    books = Replication("o", HashRing(["o", "r"]), HistoryStore(Retention(100, 60.0)))
    starts, seq = [], 1
    for n in sizes:
        books.wait("t", waiting(seq, {"r"}, n=n))
        starts.append((seq, n))
        seq += n
    done = books.confirmed("r", "t", 7, confirm)
    covered = [(s, n) for s, n in starts if s + n - 1 <= confirm]
    assert [(w.seq, w.n) for w in done] == covered
    assert all(w.route == (b"client", w.seq) and not w.replicas for w in done)
    assert books.pending == sum(sizes) - sum(n for _, n in covered)  # messages, not batches
    assert books.confirmed("r", "t", 6, 10**6) == []  # another epoch acks none of the rest


def test_a_publish_stuck_on_a_silent_replica_does_not_hold_up_later_ones() -> None:
    """After a ring change the oldest waiting publish may depend on a replica that will
    never confirm it; later ones, confirmed by the new replica, are acked at once."""
    books = Replication("o", HashRing(["o", "r", "n"]), HistoryStore(Retention(100, 60.0)))
    for seq, replica in ((1, "r"), (2, "n"), (3, "n")):
        books.wait("t", waiting(seq, {replica}))
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
    copies = [e for s, e in net.entries(STORE) if s.dst == "b"]
    # The replicated copy asks to be confirmed at once; the plain ones do not.
    assert copies[-1] == [topic, 3, epoch, 1, pack_batch([b"kept"]), False, True]
    assert [len(e) for e in copies[:-1]] == [6, 6]
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


@pytest.mark.parametrize("size", [1, 3])  # a batch of one, or of several
@pytest.mark.parametrize("store_arrived", [True, False])
def test_a_replica_dying_before_it_confirmed_gives_replica_lost(
    store_arrived: bool, size: int
) -> None:
    net = cluster("abc")
    topic = placed("abc", "ab")
    if store_arrived:
        net.hold("b", "a")  # b stores the copy, its confirmation never leaves
    else:
        net.hold("a", "b")  # the copy never reaches b
    first = net.publish_run("c", topic, [b"x%d" % i for i in range(size)], LEVEL_REPLICATED)
    refs = list(range(first, first + size))
    net.run_until_quiet()
    assert len(stored(net, "b", topic)) == (size if store_arrived else 0)
    assert net.owner(topic) == "a" and net.core("a").owner.replication.pending == size
    crashed_at = net.clock
    net.crash("b")
    net.release("b", "a")
    net.release("a", "b")
    wait_for(net, lambda: all(ref in net.nacks("c") for ref in refs))
    assert [net.nacks("c")[ref][0] for ref in refs] == [E_REPLICA_LOST] * size
    assert net.clock - crashed_at < net.config.ack_timeout  # not a timeout
    assert not set(refs) & set(net.acks("c"))
    assert net.core("a").pending == 0
    assert net.core("c").pending == 0


@pytest.mark.parametrize("size", [1, 3])  # the waiting publish: a batch of one, or several
def test_an_owner_told_of_a_missed_copy_refuses_and_starts_a_new_epoch(size: int) -> None:
    net = cluster("ab")
    topic = placed("ab", "ab")
    owner = net.core("a")
    refs = [publish(net, "a", topic, b"m%d" % i) for i in range(2)]
    net.run_until_quiet()
    assert [net.acks("a")[r][0] for r in refs] == [1, 2]
    epoch = owner.sequencer.epoch(topic)
    net.hold("b", "a")  # b's confirmation of the next one waits
    first = net.publish_run("a", topic, [b"w%d" % i for i in range(size)], LEVEL_REPLICATED)
    waiting = list(range(first, first + size))
    net.run_until_quiet()
    net.inject("a", net.envelope("b", [[STORED, [[topic, epoch, 0]]]]))  # b missed a copy
    net.release("b", "a")
    net.run_until_quiet()
    assert [net.nacks("a")[ref][0] for ref in waiting] == [E_REPLICA_LOST] * size
    assert not set(waiting) & set(net.acks("a"))  # the late confirmation acknowledges nothing
    after = publish(net, "a", topic, b"m3")
    net.run_until_quiet()
    assert net.acks("a")[after][0] == 1  # seq 1 of a new epoch
    assert owner.sequencer.epoch(topic) > epoch


def test_a_replicated_batch_is_acked_whole_once_the_replica_confirmed_its_last_seq() -> None:
    net = cluster("abc")
    topic = placed("abc", "ab")
    net.subscribe("c", exact_group(topic))
    net.run_until_quiet()
    net.hold("b", "a")
    payloads = [b"m%d" % i for i in range(4)]
    first = net.publish_run("c", topic, payloads, LEVEL_REPLICATED)
    refs = list(range(first, first + 4))
    net.run_until_quiet()
    epoch = stored(net, "a", topic)[0][0]
    assert stored(net, "b", topic) == [(epoch, i + 1, p) for i, p in enumerate(payloads)]
    copies = [e for s, e in net.entries(STORE) if s.dst == "b"]
    assert copies == [[topic, 1, epoch, 4, pack_batch(payloads), False, True]]  # one copy
    confirmations = [m for m in net.held("b", "a") if m[0] == STORED]
    assert confirmations == [[STORED, [[topic, epoch, 4]]]]  # the batch's last seq
    assert not set(refs) & (set(net.acks("c")) | set(net.nacks("c")))
    assert net.core("a").owner.replication.pending == 4  # one Waiting for the batch of 4

    net.release("b", "a")
    net.run_until_quiet()
    assert [net.acks("c")[ref] for ref in refs] == [[1, 1, 1], [2, 1, 1], [3, 1, 1], [4, 1, 1]]
    assert not set(refs) & set(net.nacks("c"))
    assert net.core("a").pending == 0 and net.core("c").pending == 0
    assert [d.payload for d in net.received("c", topic)] == payloads


def test_pending_counts_publishes_at_the_owner_as_at_the_entry_node() -> None:
    net = cluster("abc")
    topic = placed("abc", "ab")
    net.hold("b", "a")  # the confirmation waits
    net.publish_run("c", topic, [b"m0", b"m1", b"m2"], LEVEL_REPLICATED)
    net.run_until_quiet()
    assert net.core("c").pending == 3  # three publishes wait for a's answer
    assert net.core("a").pending == 3  # the same three wait for b's confirmation


def test_confirmations_nobody_waits_on_wait_for_the_tick() -> None:
    """At the end of a turn only what a replicated publish or a gap notice waits on goes
    to its owner; the rest goes at the next tick, all of it."""
    replica = books("r", "opr")
    replica.stored("o", "t", 7, 1, 3, urgent=False)
    replica.stored("p", "u", 2, 1, 1, urgent=True)
    assert replica.confirmations(all_=False) == {"p": [StoredEntry("u", 2, 1)]}
    replica.stored("o", "t", 7, 4, 2, urgent=False)
    assert replica.confirmations(all_=False) == {}
    assert replica.confirmations(all_=True) == {"o": [StoredEntry("t", 7, 5)]}
    replica.stored("o", "t", 7, 9, 1, urgent=False)  # seqs 6..8 went missing
    assert replica.confirmations(all_=False) == {"o": [StoredEntry("t", 7, 0)]}


def test_a_plain_copy_costs_no_frame_back_until_the_tick() -> None:
    net = cluster("abc")
    topic = placed("abc", "ab")
    net.run_until_quiet()
    before = len(net.entries(STORED, src="b"))
    publish(net, "c", topic, b"plain", LEVEL_OWNER)
    net.run_until_quiet()  # no tick yet: nothing from b to a
    assert len(net.entries(STORED, src="b")) == before
    net.advance(0.25)  # one heartbeat interval: the tick sends it
    assert [e for _, e in net.entries(STORED, src="b")][before:] == [
        [topic, stored(net, "a", topic)[0][0], 1]
    ]
