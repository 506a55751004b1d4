"""Per-topic history (zdps/core/history.py): retention, order, dedupe, handoff export.

* Entries are kept in ``(epoch, seq)`` order whatever order they arrive in (copies from
  a handoff are merged in), each ``(epoch, seq)`` at most once (the first copy wins).
* Retention keeps at most ``count`` entries (the newest) and none older than ``age``
  seconds; a retention of 0 messages stores nothing.
* ``export`` + ``absorb`` carry a topic's retention and entries with their ages, so a
  copy handed to another node expires when the original would have.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zdps.core.history import Entry, HistoryStore, Retention, TopicHistory

pytestmark = pytest.mark.timeout(60)

TOPIC = "t"


def keys(history: TopicHistory | None) -> list[tuple[int, int]]:
    return [(e.epoch, e.seq) for e in history.entries] if history else []


def store_keys(store: HistoryStore, topic: str = TOPIC) -> list[tuple[int, int]]:
    return keys(store.topics.get(topic))


# ---------------------------------------------------------------- TopicHistory


def test_retention_by_count_keeps_the_newest() -> None:
    history = TopicHistory(Retention(3, 100.0))
    added = [history.add(7, seq, b"%d" % seq, 0.0) for seq in range(1, 6)]
    assert added == [True] * 5
    assert keys(history) == [(7, 3), (7, 4), (7, 5)]
    assert [e.payload for e in history.entries] == [b"3", b"4", b"5"]


def test_retention_by_age_drops_what_is_too_old() -> None:
    history = TopicHistory(Retention(100, 10.0))
    for seq, stored in enumerate((0.0, 4.0, 8.0, 12.0), start=1):
        history.add(1, seq, b"", stored)
    history.trim(13.9)  # limit 3.9: only the entry stored at 0 is too old
    assert keys(history) == [(1, 2), (1, 3), (1, 4)]
    history.trim(14.0)  # limit 4.0: stored at exactly the limit is kept
    assert keys(history) == [(1, 2), (1, 3), (1, 4)]
    history.trim(21.5)  # limit 11.5
    assert keys(history) == [(1, 4)]
    history.trim(100.0)
    assert keys(history) == []


def test_trim_applies_a_lowered_count() -> None:
    history = TopicHistory(Retention(10, 100.0))
    for seq in range(1, 8):
        history.add(1, seq, b"", 0.0)
    history.retention = Retention(2, 100.0)
    history.trim(0.0)
    assert keys(history) == [(1, 6), (1, 7)]


def test_out_of_order_adds_are_merged_in_epoch_seq_order() -> None:
    history = TopicHistory(Retention(100, 100.0))
    for epoch, seq in [(5, 2), (5, 4), (9, 1), (5, 3), (3, 7), (9, 2), (5, 1), (7, 1)]:
        assert history.add(epoch, seq, f"{epoch}.{seq}".encode(), 0.0)
    assert keys(history) == [(3, 7), (5, 1), (5, 2), (5, 3), (5, 4), (7, 1), (9, 1), (9, 2)]
    assert [e.payload for e in history.entries][:3] == [b"3.7", b"5.1", b"5.2"]
    assert history.last_epoch() == 9


def test_epoch_orders_before_seq() -> None:
    history = TopicHistory(Retention(100, 100.0))
    history.add(2, 1, b"", 0.0)
    history.add(1, 99, b"", 0.0)  # a larger seq of an older epoch is older
    assert keys(history) == [(1, 99), (2, 1)]


def test_duplicates_are_skipped_and_the_first_copy_wins() -> None:
    history = TopicHistory(Retention(100, 100.0))
    assert history.add(4, 1, b"first", 1.0)
    assert history.add(4, 2, b"two", 1.0)
    assert history.add(4, 3, b"three", 1.0)
    assert not history.add(4, 3, b"again", 5.0)  # the newest again
    assert not history.add(4, 1, b"again", 5.0)  # the oldest again
    assert not history.add(4, 2, b"again", 5.0)  # one in the middle again
    assert list(history.entries) == [
        Entry(4, 1, b"first", 1.0),
        Entry(4, 2, b"two", 1.0),
        Entry(4, 3, b"three", 1.0),
    ]


def test_an_insert_older_than_everything_in_a_full_history_is_dropped() -> None:
    history = TopicHistory(Retention(2, 100.0))
    history.add(5, 1, b"", 0.0)
    history.add(5, 2, b"", 0.0)
    history.add(4, 9, b"", 0.0)  # older than both: over the count, so gone at once
    assert keys(history) == [(5, 1), (5, 2)]
    history.add(5, 0, b"", 0.0)  # between nothing kept and (5, 1): also the oldest
    assert keys(history) == [(5, 1), (5, 2)]
    history.add(5, 3, b"", 0.0)
    assert keys(history) == [(5, 2), (5, 3)]


def test_after_returns_what_follows_a_position_oldest_first_up_to_limit() -> None:
    history = TopicHistory(Retention(100, 100.0))
    for epoch in (10, 20):
        for seq in range(1, 5):
            history.add(epoch, seq, b"%d.%d" % (epoch, seq), 0.0)
    after = history.after
    assert [(e.epoch, e.seq) for e in after(0, 0, 100)] == keys(history)
    assert [(e.epoch, e.seq) for e in after(10, 2, 100)] == [
        (10, 3),
        (10, 4),
        (20, 1),
        (20, 2),
        (20, 3),
        (20, 4),
    ]
    assert [(e.epoch, e.seq) for e in after(10, 2, 3)] == [(10, 3), (10, 4), (20, 1)]
    assert [(e.epoch, e.seq) for e in after(15, 0, 2)] == [(20, 1), (20, 2)]  # not stored
    assert [(e.epoch, e.seq) for e in after(10, 99, 1)] == [(20, 1)]
    assert after(20, 4, 10) == []
    assert after(99, 0, 10) == []
    assert [e.payload for e in after(20, 2, 10)] == [b"20.3", b"20.4"]


# ---------------------------------------------------------------- HistoryStore


def test_store_uses_the_default_or_the_configured_retention() -> None:
    store = HistoryStore(Retention(2, 50.0))
    for seq in range(1, 5):
        store.store("a", 1, seq, b"", 0.0)
    store.configure("b", Retention(3, 50.0), 0.0)
    for seq in range(1, 5):
        store.store("b", 1, seq, b"", 0.0)
    assert store_keys(store, "a") == [(1, 3), (1, 4)]
    assert store_keys(store, "b") == [(1, 2), (1, 3), (1, 4)]
    assert store.retention("a") == Retention(2, 50.0)
    assert store.retention("b") == Retention(3, 50.0)
    assert len(store) == 5
    assert sorted(store.held()) == ["a", "b"]


def test_configure_trims_what_is_already_stored() -> None:
    store = HistoryStore(Retention(10, 50.0))
    for seq in range(1, 7):
        store.store(TOPIC, 1, seq, b"", float(seq))
    store.configure(TOPIC, Retention(4, 3.5), 7.0)  # count 4, then age: stored >= 3.5
    assert store_keys(store) == [(1, 4), (1, 5), (1, 6)]
    store.store(TOPIC, 1, 7, b"", 7.0)
    store.store(TOPIC, 1, 8, b"", 7.0)
    assert store_keys(store) == [(1, 5), (1, 6), (1, 7), (1, 8)]


def test_a_retention_of_zero_messages_stores_nothing() -> None:
    store = HistoryStore(Retention(0, 50.0))
    store.store(TOPIC, 1, 1, b"x", 0.0)
    assert store.topics == {} and len(store) == 0
    store.configure("kept", Retention(1, 50.0), 0.0)
    store.store("kept", 1, 1, b"x", 0.0)
    assert store_keys(store, "kept") == [(1, 1)]


def test_expire_applies_the_age_and_forgets_empty_topics() -> None:
    store = HistoryStore(Retention(10, 5.0))
    store.store("old", 1, 1, b"", 0.0)
    store.store("mixed", 1, 1, b"", 0.0)
    store.store("mixed", 1, 2, b"", 4.0)
    store.configure("configured", Retention(10, 5.0), 0.0)
    store.expire(6.0)
    assert sorted(store.topics) == ["mixed"]
    assert store_keys(store, "mixed") == [(1, 2)]
    assert sorted(store.held()) == ["configured", "mixed"]
    assert store.retention("configured") == Retention(10, 5.0)  # a setting survives


def test_fetch_newest_and_last_epoch() -> None:
    store = HistoryStore(Retention(100, 50.0))
    assert store.fetch(TOPIC, 0, 0, 10) == []
    assert store.newest(TOPIC) == (0, 0)
    assert store.last_epoch(TOPIC) == 0
    for epoch, seq in [(3, 1), (3, 2), (8, 1), (8, 2), (8, 3)]:
        store.store(TOPIC, epoch, seq, b"%d" % seq, 0.0)
    assert [(e.epoch, e.seq) for e in store.fetch(TOPIC, 3, 1, 3)] == [(3, 2), (8, 1), (8, 2)]
    assert [e.payload for e in store.fetch(TOPIC, 8, 1, 10)] == [b"2", b"3"]
    assert store.newest(TOPIC) == (8, 3)
    assert store.last_epoch(TOPIC) == 8
    assert store.fetch("other", 0, 0, 10) == []


def test_drop_forgets_entries_and_retention() -> None:
    store = HistoryStore(Retention(100, 50.0))
    store.configure(TOPIC, Retention(5, 9.0), 0.0)
    store.store(TOPIC, 1, 1, b"", 0.0)
    store.store("other", 1, 1, b"", 0.0)
    store.drop(TOPIC)
    assert store.fetch(TOPIC, 0, 0, 10) == []
    assert store.retention(TOPIC) == Retention(100, 50.0)
    assert store.held() == ["other"]
    store.drop("never-held")  # no error
    assert len(store) == 1


def test_export_and_absorb_round_trip_keeping_ages() -> None:
    source = HistoryStore(Retention(100, 50.0))
    source.configure(TOPIC, Retention(10, 12.0), 0.0)
    source.store(TOPIC, 2, 1, b"one", 0.0)
    source.store(TOPIC, 2, 2, b"two", 5.0)
    exported = source.export(TOPIC, 10.0)
    assert exported == (TOPIC, Retention(10, 12.0), [[2, 1, b"one", 10.0], [2, 2, b"two", 5.0]])

    target = HistoryStore(Retention(100, 50.0))
    target.absorb(*exported, now=100.0)  # another node, another clock
    assert target.retention(TOPIC) == Retention(10, 12.0)
    assert list(target.topics[TOPIC].entries) == [
        Entry(2, 1, b"one", 90.0),
        Entry(2, 2, b"two", 95.0),
    ]
    # Ages carry on where they were: (2, 1) is 12.5 s old at 102.5, (2, 2) only 7.5 s.
    target.expire(102.5)
    assert store_keys(target) == [(2, 2)]
    target.expire(107.0)
    assert store_keys(target) == [(2, 2)]
    target.expire(107.1)
    assert TOPIC not in target.topics
    # And back again, the retention still travels without entries.
    assert target.export(TOPIC, 200.0) == (TOPIC, Retention(10, 12.0), [])


def test_export_of_a_topic_without_its_own_retention_sends_none() -> None:
    source = HistoryStore(Retention(100, 50.0))
    source.store(TOPIC, 1, 1, b"x", 3.0)
    assert source.export(TOPIC, 3.0) == (TOPIC, None, [[1, 1, b"x", 0.0]])
    target = HistoryStore(Retention(7, 70.0))
    target.absorb(TOPIC, None, [[1, 1, b"x", 0.0]], 3.0)
    assert target.retention(TOPIC) == Retention(7, 70.0)  # its own default
    assert TOPIC not in target.configured
    assert source.export("none", 1.0) == ("none", None, [])


def test_absorb_merges_with_what_is_there_without_duplicates() -> None:
    store = HistoryStore(Retention(100, 50.0))
    for seq in (1, 3, 5):
        store.store(TOPIC, 4, seq, b"mine", 0.0)
    incoming = [[4, seq, b"theirs", 0.0] for seq in (1, 2, 3, 4)] + [[2, 9, b"theirs", 0.0]]
    store.absorb(TOPIC, None, incoming, 1.0)
    assert store_keys(store) == [(2, 9), (4, 1), (4, 2), (4, 3), (4, 4), (4, 5)]
    payloads = {(e.epoch, e.seq): e.payload for e in store.topics[TOPIC].entries}
    assert payloads[(4, 1)] == b"mine" and payloads[(4, 3)] == b"mine"
    assert payloads[(4, 2)] == b"theirs"


# ---------------------------------------------------------------- property

stamp = st.tuples(st.integers(1, 6), st.integers(1, 8))
operation = st.one_of(
    st.tuples(st.just("store"), stamp),
    st.tuples(st.just("absorb"), st.lists(stamp, max_size=8)),
)


@settings(max_examples=300, deadline=None)
@given(count=st.integers(1, 12), operations=st.lists(operation, max_size=40))
def test_any_interleaving_of_stores_and_absorbs_is_sorted_unique_and_bounded(
    count: int, operations: list
) -> None:
    store = HistoryStore(Retention(count, 1000.0))
    seen: set[tuple[int, int]] = set()
    for now, (kind, arg) in enumerate(operations):
        if kind == "store":
            store.store(TOPIC, *arg, b"%d.%d" % arg, float(now))
            seen.add(arg)
        else:
            store.absorb(TOPIC, None, [[e, s, b"%d.%d" % (e, s), 0.5] for e, s in arg], now)
            seen.update(arg)
        stored = store_keys(store)
        assert stored == sorted(set(stored)), "sorted and duplicate-free"
        assert len(stored) <= count
    # More precisely: the newest ``count`` distinct stamps ever stored, with their payloads.
    expected = sorted(seen)[-count:]
    assert store_keys(store) == expected
    history = store.topics.get(TOPIC)
    payloads = [e.payload for e in history.entries] if history else []
    assert payloads == [b"%d.%d" % k for k in expected]
