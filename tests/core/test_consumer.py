"""The durable consumer core (zdps/core/consumer.py): deliveries, acks, redeliveries.

Protocol rules, checked over random interleavings of handouts, acks, naks, terms and
time passing against a model of each message's fate:

* new messages go out once each, in history order, never more than ``max_pending``
  pending at a time;
* a pending message goes again only once ``ack_wait`` went by since its last delivery,
  or after a ``nak``; never after an ack or a term; redeliveries carry the count;
* a message delivered ``max_deliver`` times and still not acked is dead-lettered, once;
* history must keep everything after the floor: nothing pending is at or below it;
* a pending message history dropped is counted as lost, not delivered.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zdps.core.consumer import COMPACT_SLACK, Consumer, ConsumerConfig, Position

pytestmark = pytest.mark.timeout(60)


class History:
    """Messages of epochs 1 and 2 (the owner changed once), each payload its position."""

    def __init__(self, first_epoch: int = 30, second_epoch: int = 30) -> None:
        self.messages = [(1, s, b"1.%d" % s) for s in range(1, first_epoch + 1)]
        self.messages += [(2, s, b"2.%d" % s) for s in range(1, second_epoch + 1)]
        self.dropped: set[Position] = set()

    def fetch(self, after: Position, limit: int) -> list[tuple[int, int, bytes]]:
        kept = [
            m for m in self.messages if after < (m[0], m[1]) and (m[0], m[1]) not in self.dropped
        ]
        return kept[:limit]


def test_new_messages_go_once_each_in_order_up_to_max_pending() -> None:
    history = History()
    consumer = Consumer(ConsumerConfig(ack_wait=10, max_pending=4))
    first = consumer.handouts(history.fetch, 0.0, 100)
    assert [h.position for h in first] == [(1, 1), (1, 2), (1, 3), (1, 4)]
    assert all(h.deliveries == 1 for h in first)
    assert consumer.handouts(history.fetch, 1.0, 100) == []  # back-pressure
    assert consumer.ack((1, 2)) and not consumer.ack((1, 2))
    assert [h.position for h in consumer.handouts(history.fetch, 1.0, 100)] == [(1, 5)]
    assert consumer.floor == (1, 0)


def test_a_message_goes_again_after_ack_wait_or_a_nak_and_is_dead_lettered_at_last() -> None:
    history = History()
    consumer = Consumer(ConsumerConfig(ack_wait=10, max_deliver=3, max_pending=1))
    assert [h.deliveries for h in consumer.handouts(history.fetch, 0.0, 10)] == [1]
    assert consumer.next_due() == 10.0
    assert consumer.handouts(history.fetch, 9.9, 10) == []
    again = consumer.handouts(history.fetch, 10.0, 10)
    assert [(h.position, h.deliveries, h.payload) for h in again] == [((1, 1), 2, b"1.1")]
    assert consumer.nak((1, 1), 11.0)
    assert [h.deliveries for h in consumer.handouts(history.fetch, 11.0, 10)] == [3]
    # Not acked after its third delivery: dead-lettered, and the next one takes its place.
    assert [(h.position, h.deliveries) for h in consumer.handouts(history.fetch, 21.0, 10)] == [
        ((1, 2), 1)
    ]
    assert consumer.take_dead() == [(1, 1)] and consumer.take_dead() == []


def test_a_nak_of_an_older_delivery_is_stale_and_changes_nothing() -> None:
    """The message went to another member since: that member holds it now."""
    history = History()
    consumer = Consumer(ConsumerConfig(ack_wait=10, max_pending=1))
    consumer.handouts(history.fetch, 0.0, 10)
    assert [h.deliveries for h in consumer.handouts(history.fetch, 10.0, 10)] == [2]
    assert not consumer.nak((1, 1), 11.0, deliveries=1)
    assert consumer.handouts(history.fetch, 11.0, 10) == [] and consumer.next_due() == 20.0
    assert consumer.nak((1, 1), 12.0, deliveries=2)
    assert [h.deliveries for h in consumer.handouts(history.fetch, 12.0, 10)] == [3]


def test_one_message_pending_for_long_keeps_no_trail_of_acked_ones() -> None:
    """Its due time is first in line; the entries of every message acked after it must
    not pile up behind it until it is due."""

    def fetch(after: Position, limit: int) -> list[tuple[int, int, bytes]]:
        return [(1, seq, b"") for seq in range(after[1] + 1, after[1] + 1 + limit)]

    consumer = Consumer(ConsumerConfig(ack_wait=1000, max_pending=10))
    consumer.handouts(fetch, 0.0, 10)  # (1, 1) is never acked
    for step in range(1, 3000):
        for handout in consumer.handouts(fetch, step / 1000, 10):
            assert consumer.ack(handout.position)
        for position in [(1, s) for s in range(2, 11)]:
            consumer.ack(position)
    assert len(consumer.pending) <= 10 and consumer.floor == (1, 0)
    assert COMPACT_SLACK < 10_000  # 30,000 messages went: a trail would be longer
    assert len(consumer._due) <= 2 * 10 + COMPACT_SLACK + 10
    assert len(consumer._oldest) <= 2 * 10 + COMPACT_SLACK + 10
    assert consumer.next_due() == 1000.0


def test_what_history_holds_late_of_an_older_epoch_goes_first_flagged() -> None:
    """The other side of a split went on with epoch 1 after the cursor moved to 2."""
    history = History(first_epoch=6, second_epoch=5)
    consumer = Consumer(ConsumerConfig(ack_wait=10, max_pending=10), cursor=(2, 2))
    consumer.marks = {1: 3, 2: 2}  # it had epoch 1 up to 3 when the cursor moved on
    consumer.catch_up({1: 6, 2: 5}, history.fetch)
    assert consumer.floor == (1, 3)  # history must keep the late ones
    assert consumer.snapshot()[1] == [[1, 4, 1], [1, 5, 1], [1, 6, 1]]
    handed = [(h.position, h.deliveries) for h in consumer.handouts(history.fetch, 0.0, 4)]
    assert handed == [((1, 4), 2), ((1, 5), 2), ((1, 6), 2), ((2, 3), 1)]
    assert consumer.marks == {1: 6, 2: 3} and consumer.floor == (1, 3)
    consumer.catch_up({1: 6, 2: 5}, history.fetch)  # nothing new: nothing again
    assert [h.position for h in consumer.handouts(history.fetch, 0.0, 10)] == [(2, 4), (2, 5)]


def test_an_epoch_the_consumer_never_saw_below_its_cursor_is_late_whole() -> None:
    history = History(first_epoch=3, second_epoch=2)
    consumer = Consumer(ConsumerConfig(ack_wait=10), cursor=(2, 2), marks={2: 2})
    consumer.catch_up({1: 3, 2: 2}, history.fetch)
    assert [h.position for h in consumer.handouts(history.fetch, 0.0, 10)] == [
        (1, 1),
        (1, 2),
        (1, 3),
    ]


def test_the_floor_follows_the_oldest_pending_message() -> None:
    history = History()
    consumer = Consumer(ConsumerConfig(ack_wait=10, max_pending=10))
    consumer.handouts(history.fetch, 0.0, 3)
    assert consumer.floor == (1, 0)
    consumer.ack((1, 1))
    assert consumer.floor == (1, 1)
    consumer.term((1, 2))
    consumer.ack((1, 3))
    assert consumer.floor == consumer.cursor == (1, 3)


def test_a_pending_message_history_dropped_is_lost_not_delivered() -> None:
    history = History()
    consumer = Consumer(ConsumerConfig(ack_wait=1, max_pending=2))
    consumer.handouts(history.fetch, 0.0, 2)
    history.dropped.add((1, 1))
    again = consumer.handouts(history.fetch, 5.0, 10)
    assert [(h.position, h.deliveries) for h in again] == [((1, 2), 2), ((1, 3), 1)]
    assert consumer.lost == 1 and (1, 1) not in consumer.pending


OPS = st.lists(
    st.tuples(
        st.sampled_from(["handout", "ack", "nak", "term", "wait"]),
        st.integers(0, 40),  # which pending message, or how many to hand out
        st.floats(0, 25),  # seconds to wait
    ),
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(
    OPS,
    st.integers(1, 6),  # max_pending
    st.integers(1, 4),  # max_deliver
)
def test_any_interleaving_keeps_every_message_s_fate_right(ops, max_pending, max_deliver):
    history = History(8, 8)
    config = ConsumerConfig(ack_wait=10.0, max_deliver=max_deliver, max_pending=max_pending)
    consumer = Consumer(config)
    now = 0.0
    deliveries: dict[Position, list[float]] = {}  # times each message went out
    done: set[Position] = set()
    nakked: set[Position] = set()
    dead: list[Position] = []
    firsts: list[Position] = []

    def hand_out(limit: int) -> None:
        for h in consumer.handouts(history.fetch, now, limit):
            assert h.position not in done
            times = deliveries.setdefault(h.position, [])
            assert h.deliveries == len(times) + 1 <= max_deliver
            if times:  # a redelivery: due, or asked for
                assert h.position in nakked or now >= times[-1] + config.ack_wait
            else:
                firsts.append(h.position)
            nakked.discard(h.position)
            times.append(now)
            assert h.payload == b"%d.%d" % h.position
        dead.extend(consumer.take_dead())
        assert len(consumer.pending) <= max_pending

    for op, which, seconds in ops:
        pending = sorted(consumer.pending)
        target = pending[which % len(pending)] if pending else (1, which)
        if op == "handout":
            hand_out(which)
        elif op == "wait":
            now += seconds
        elif op == "nak":
            assert consumer.nak(target, now) == bool(pending)
            if pending:
                nakked.add(target)
        else:
            assert (consumer.ack if op == "ack" else consumer.term)(target) == bool(pending)
            if pending:
                done.add(target)
        floor = consumer.floor
        assert all(p > floor for p in consumer.pending)
        assert all(p <= consumer.cursor for p in consumer.pending)
    assert firsts == sorted(firsts) and len(set(firsts)) == len(firsts)  # in order, once
    # Nobody acks any more: each message goes out until max_deliver, then is dead.
    hand_out(100)
    while consumer.pending:
        now += config.ack_wait
        hand_out(100)
    assert consumer.next_due() == math.inf
    assert len(deliveries) == 16  # every message went out
    assert set(dead).isdisjoint(done) and len(dead) == len(set(dead))
    assert all(len(deliveries[p]) == max_deliver for p in dead)
    assert set(deliveries) == done | set(dead)
