"""Per-topic history (zdps/core/history.py): retention, order, dedupe, handoff export.

* Messages are stored in the batches the owner sequenced: a batch of ``n`` messages
  (``seq``..``seq + n - 1``) is one entry, its payloads packed; reads serve them one
  message at a time, ``(epoch, seq, payload)``.
* Messages are kept in ``(epoch, seq)`` order whatever order they arrive in (copies
  from a handoff are merged in), each ``(epoch, seq)`` at most once (the first copy
  wins): a batch overlapping what is held adds only the messages missing.
* Retention keeps at most ``count`` messages (the newest), exact to the message: it
  cuts into the oldest batch (its first ``skip`` messages are gone); none older than
  ``age`` seconds (whole batches, by the time they were stored); a retention of 0
  messages stores nothing. ``store`` says how many of a batch's messages are new and
  still held.
* ``export`` + ``absorb`` carry a topic's retention and batches with their ages, so a
  copy handed to another node expires when the original would have; only the
  messages held travel.
* ``page`` serves a history request per message: at most ``limit`` messages and about
  HISTORY_PAGE_BYTES of payload, across batch boundaries.
"""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zdps.core import history as history_module
from zdps.core.history import Entry, HistoryStore, Retention, TopicHistory
from zdps.wire.api import HistoryQuery
from zdps.wire.batches import pack_batch, unpack_batch

pytestmark = pytest.mark.timeout(60)

TOPIC = "t"


def held(history: TopicHistory | None) -> list[tuple[int, int, bytes]]:
    """Every message ``history`` holds, as ``(epoch, seq, payload)``, read from its
    entries directly (not through ``after``)."""
    if history is None:
        return []
    found = []
    for i, entry in enumerate(history.entries):
        payloads = unpack_batch(entry.batch, entry.n)
        for offset in range(history.skip if i == 0 else 0, entry.n):
            found.append((entry.epoch, entry.seq + offset, payloads[offset]))
    return found


def keys(history: TopicHistory | None) -> list[tuple[int, int]]:
    return [(epoch, seq) for epoch, seq, _ in held(history)]


def payloads(history: TopicHistory | None) -> list[bytes]:
    return [payload for _, _, payload in held(history)]


def batches(history: TopicHistory | None) -> list[tuple[int, int, int]]:
    """``(epoch, seq, n)`` of each stored entry."""
    return [(e.epoch, e.seq, e.n) for e in history.entries] if history else []


def store_keys(store: HistoryStore, topic: str = TOPIC) -> list[tuple[int, int]]:
    return keys(store.topics.get(topic))


def add(history: TopicHistory, epoch: int, seq: int, data: list[bytes], stored: float = 0.0):
    """Add the batch of ``data`` from ``(epoch, seq)`` on."""
    return history.add(epoch, seq, len(data), pack_batch(data), stored)


def put(
    store: HistoryStore, epoch: int, seq: int, data: list[bytes], now: float = 0.0, topic=TOPIC
):
    return store.store(topic, epoch, seq, len(data), pack_batch(data), now)


def check_books(history: TopicHistory) -> None:
    """``size`` and ``skip`` agree with the entries, which do not overlap."""
    entries = list(history.entries)
    assert history.size == sum(e.n for e in entries) - history.skip
    assert history.skip == 0 or 0 < history.skip < entries[0].n
    for before, after in pairwise(entries):
        assert before.last < (after.epoch, after.seq)


# ---------------------------------------------------------------- TopicHistory


def test_retention_by_count_keeps_the_newest() -> None:
    history = TopicHistory(Retention(3, 100.0))
    added = [add(history, 7, seq, [b"%d" % seq]) for seq in range(1, 6)]
    assert added == [1] * 5
    assert keys(history) == [(7, 3), (7, 4), (7, 5)]
    assert payloads(history) == [b"3", b"4", b"5"]
    assert history.size == 3


def test_a_batch_is_stored_as_one_entry_and_served_per_message() -> None:
    history = TopicHistory(Retention(100, 100.0))
    blob = pack_batch([b"a", b"b", b"c"])
    assert history.add(3, 1, 3, blob, 2.0) == 3
    assert list(history.entries) == [Entry(3, 1, 3, blob, 2.0)]  # packed as it came
    assert history.entries[0].last == (3, 3)
    assert history.size == 3 and history.first() == (3, 1)
    assert history.after(0, 0, 10) == [(3, 1, b"a"), (3, 2, b"b"), (3, 3, b"c")]
    assert history.after(3, 1, 10) == [(3, 2, b"b"), (3, 3, b"c")]
    assert history.after(3, 1, 1) == [(3, 2, b"b")]
    assert history.after(3, 3, 10) == []
    assert add(history, 3, 4, [b"d", b"e"]) == 2
    assert batches(history) == [(3, 1, 3), (3, 4, 2)]
    assert history.after(3, 2, 3) == [(3, 3, b"c"), (3, 4, b"d"), (3, 5, b"e")]


def test_retention_by_count_is_exact_to_the_message_and_cuts_into_the_oldest_batch() -> None:
    history = TopicHistory(Retention(5, 100.0))
    assert add(history, 1, 1, [b"1", b"2", b"3", b"4"]) == 4
    assert add(history, 1, 5, [b"5", b"6", b"7"]) == 3
    assert batches(history) == [(1, 1, 4), (1, 5, 3)] and history.skip == 2
    assert history.size == 5 and history.first() == (1, 3)
    assert keys(history) == [(1, s) for s in range(3, 8)]
    assert history.after(0, 0, 100) == held(history)  # the trimmed ones are not served
    assert history.after(1, 1, 2) == [(1, 3, b"3"), (1, 4, b"4")]
    assert add(history, 1, 8, [b"8"]) == 1
    assert history.skip == 3 and keys(history)[0] == (1, 4)
    assert add(history, 1, 9, [b"9", b"10"]) == 2  # the head goes, the next one is cut
    assert batches(history) == [(1, 5, 3), (1, 8, 1), (1, 9, 2)] and history.skip == 1
    assert payloads(history) == [b"6", b"7", b"8", b"9", b"10"]
    check_books(history)


def test_a_batch_larger_than_the_count_keeps_its_newest_messages() -> None:
    history = TopicHistory(Retention(3, 100.0))
    add(history, 1, 1, [b"old"])
    assert add(history, 2, 1, [b"%d" % i for i in range(1, 6)]) == 3
    assert batches(history) == [(2, 1, 5)] and history.skip == 2
    assert history.after(0, 0, 10) == [(2, 3, b"3"), (2, 4, b"4"), (2, 5, b"5")]


def test_retention_by_age_drops_what_is_too_old() -> None:
    history = TopicHistory(Retention(100, 10.0))
    for seq, stored in enumerate((0.0, 4.0, 8.0, 12.0), start=1):
        add(history, 1, seq, [b""], stored)
    history.trim(13.9)  # limit 3.9: only the entry stored at 0 is too old
    assert keys(history) == [(1, 2), (1, 3), (1, 4)]
    history.trim(14.0)  # limit 4.0: stored at exactly the limit is kept
    assert keys(history) == [(1, 2), (1, 3), (1, 4)]
    history.trim(21.5)  # limit 11.5
    assert keys(history) == [(1, 4)]
    history.trim(100.0)
    assert keys(history) == [] and history.size == 0


def test_age_trimming_drops_whole_batches_even_one_cut_by_the_count() -> None:
    history = TopicHistory(Retention(6, 10.0))
    add(history, 1, 1, [b"a", b"b", b"c", b"d"], 0.0)
    add(history, 1, 5, [b"e", b"f", b"g"], 5.0)  # 7 > 6: the first batch is cut
    assert history.skip == 1 and history.size == 6
    history.trim(10.0)  # limit 0.0: stored at exactly the limit is kept
    assert keys(history) == [(1, s) for s in range(2, 8)]
    history.trim(10.1)  # the whole first batch goes, its trimmed part included
    assert batches(history) == [(1, 5, 3)] and history.skip == 0 and history.size == 3
    assert payloads(history) == [b"e", b"f", b"g"]
    history.trim(15.1)
    assert batches(history) == [] and history.size == 0 and history.first() is None


def test_trim_applies_a_lowered_count() -> None:
    history = TopicHistory(Retention(10, 100.0))
    for seq in range(1, 8):
        add(history, 1, seq, [b""])
    history.retention = Retention(2, 100.0)
    history.trim(0.0)
    assert keys(history) == [(1, 6), (1, 7)]


def test_trim_applies_a_lowered_count_inside_a_batch() -> None:
    history = TopicHistory(Retention(10, 100.0))
    add(history, 1, 1, [b"1", b"2", b"3"])
    add(history, 1, 4, [b"4", b"5", b"6", b"7"])
    history.retention = Retention(2, 100.0)
    history.trim(0.0)
    assert batches(history) == [(1, 4, 4)] and history.skip == 2
    assert payloads(history) == [b"6", b"7"] and history.size == 2


def test_out_of_order_adds_are_merged_in_epoch_seq_order() -> None:
    history = TopicHistory(Retention(100, 100.0))
    for epoch, seq in [(5, 2), (5, 4), (9, 1), (5, 3), (3, 7), (9, 2), (5, 1), (7, 1)]:
        assert add(history, epoch, seq, [f"{epoch}.{seq}".encode()]) == 1
    assert keys(history) == [(3, 7), (5, 1), (5, 2), (5, 3), (5, 4), (7, 1), (9, 1), (9, 2)]
    assert payloads(history)[:3] == [b"3.7", b"5.1", b"5.2"]
    assert history.last_epoch() == 9
    check_books(history)


def test_epoch_orders_before_seq() -> None:
    history = TopicHistory(Retention(100, 100.0))
    add(history, 2, 1, [b""])
    add(history, 1, 99, [b""])  # a larger seq of an older epoch is older
    assert keys(history) == [(1, 99), (2, 1)]


def test_duplicates_are_skipped_and_the_first_copy_wins() -> None:
    history = TopicHistory(Retention(100, 100.0))
    assert add(history, 4, 1, [b"first"], 1.0) == 1
    assert add(history, 4, 2, [b"two"], 1.0) == 1
    assert add(history, 4, 3, [b"three"], 1.0) == 1
    assert add(history, 4, 3, [b"again"], 5.0) == 0  # the newest again
    assert add(history, 4, 1, [b"again"], 5.0) == 0  # the oldest again
    assert add(history, 4, 2, [b"again"], 5.0) == 0  # one in the middle again
    assert list(history.entries) == [
        Entry(4, 1, 1, pack_batch([b"first"]), 1.0),
        Entry(4, 2, 1, pack_batch([b"two"]), 1.0),
        Entry(4, 3, 1, pack_batch([b"three"]), 1.0),
    ]
    assert add(history, 4, 1, [b"x", b"y", b"z"], 5.0) == 0  # a batch of held ones
    assert payloads(history) == [b"first", b"two", b"three"] and history.size == 3


def test_an_out_of_order_batch_overlapping_held_messages_adds_only_the_missing_ones() -> None:
    history = TopicHistory(Retention(100, 100.0))
    add(history, 4, 3, [b"c", b"d"])
    add(history, 4, 7, [b"g"])
    assert add(history, 4, 1, [b"A", b"B", b"C", b"D", b"E", b"F", b"G", b"H"], 1.0) == 5
    assert keys(history) == [(4, s) for s in range(1, 9)]
    assert payloads(history) == [b"A", b"B", b"c", b"d", b"E", b"F", b"g", b"H"]
    assert history.size == 8 and history.entries[-1].last == (4, 8)
    check_books(history)


def test_an_overlapping_batch_counts_only_the_new_messages_still_held() -> None:
    history = TopicHistory(Retention(4, 100.0))
    add(history, 4, 3, [b"3", b"4", b"5"])
    add(history, 4, 7, [b"7"])
    # New: 1, 2 and 6; then the count keeps 4..7, so of the new ones only 6 is held.
    assert add(history, 4, 1, [b"n%d" % s for s in range(1, 8)]) == 1
    assert held(history) == [(4, 4, b"4"), (4, 5, b"5"), (4, 6, b"n6"), (4, 7, b"7")]
    check_books(history)


def test_an_insert_older_than_everything_in_a_full_history_is_dropped() -> None:
    history = TopicHistory(Retention(2, 100.0))
    add(history, 5, 1, [b""])
    add(history, 5, 2, [b""])
    assert add(history, 4, 9, [b""]) == 0  # older than both: over the count, so gone at once
    assert keys(history) == [(5, 1), (5, 2)]
    history.add(5, 0, 1, pack_batch([b""]), 0.0)  # between nothing kept and (5, 1)
    assert keys(history) == [(5, 1), (5, 2)]
    add(history, 5, 3, [b""])
    assert keys(history) == [(5, 2), (5, 3)]


def test_a_batch_older_than_everything_in_a_full_history_adds_nothing() -> None:
    history = TopicHistory(Retention(3, 100.0))
    add(history, 5, 1, [b"1", b"2", b"3", b"4", b"5"])  # 1 and 2 trimmed at once
    assert add(history, 4, 1, [b"x", b"y", b"z"]) == 0
    assert add(history, 5, 1, [b"x", b"y"]) == 0  # the trimmed ones again
    assert held(history) == [(5, 3, b"3"), (5, 4, b"4"), (5, 5, b"5")]
    check_books(history)


def test_after_returns_what_follows_a_position_oldest_first_up_to_limit() -> None:
    history = TopicHistory(Retention(100, 100.0))
    for epoch in (10, 20):
        for seq in range(1, 5):
            add(history, epoch, seq, [b"%d.%d" % (epoch, seq)])
    after = history.after
    assert [(e, s) for e, s, _ in after(0, 0, 100)] == keys(history)
    assert [(e, s) for e, s, _ in after(10, 2, 100)] == [
        (10, 3),
        (10, 4),
        (20, 1),
        (20, 2),
        (20, 3),
        (20, 4),
    ]
    assert [(e, s) for e, s, _ in after(10, 2, 3)] == [(10, 3), (10, 4), (20, 1)]
    assert [(e, s) for e, s, _ in after(15, 0, 2)] == [(20, 1), (20, 2)]  # not stored
    assert [(e, s) for e, s, _ in after(10, 99, 1)] == [(20, 1)]
    assert after(20, 4, 10) == []
    assert after(99, 0, 10) == []
    assert [p for _, _, p in after(20, 2, 10)] == [b"20.3", b"20.4"]


def test_after_serves_messages_across_batch_boundaries() -> None:
    history = TopicHistory(Retention(100, 100.0))
    add(history, 10, 1, [b"a", b"b", b"c"])
    add(history, 10, 4, [b"d", b"e"])
    add(history, 20, 1, [b"f", b"g", b"h"])
    assert [p for _, _, p in history.after(0, 0, 100)] == [b"%c" % c for c in b"abcdefgh"]
    assert history.after(10, 2, 4) == [(10, 3, b"c"), (10, 4, b"d"), (10, 5, b"e"), (20, 1, b"f")]
    assert history.after(10, 5, 2) == [(20, 1, b"f"), (20, 2, b"g")]
    assert history.after(10, 99, 1) == [(20, 1, b"f")]  # between two epochs
    assert history.after(20, 2, 10) == [(20, 3, b"h")]


def test_after_with_a_limit_of_zero_returns_nothing() -> None:
    history = TopicHistory(Retention(100, 100.0))
    add(history, 1, 1, [b"a", b"b"])
    assert history.after(0, 0, 0) == []


@settings(max_examples=100, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=8),
    count=st.integers(1, 30),
    position=st.integers(0, 40),
    limit=st.integers(1, 40),
)
def test_after_matches_the_messages_held_one_by_one(
    sizes: list[int], count: int, position: int, limit: int
) -> None:
    history = TopicHistory(Retention(count, 100.0))
    seq = 1
    for n in sizes:
        assert add(history, 3, seq, [b"%d" % s for s in range(seq, seq + n)]) == min(n, count)
        seq += n
    everything = [(3, s, b"%d" % s) for s in range(1, seq)][-count:]
    assert held(history) == everything
    check_books(history)
    assert history.after(3, position, limit) == [m for m in everything if m[1] > position][:limit]


# ---------------------------------------------------------------- HistoryStore


def test_store_uses_the_default_or_the_configured_retention() -> None:
    store = HistoryStore(Retention(2, 50.0))
    for seq in range(1, 5):
        put(store, 1, seq, [b""], topic="a")
    store.configure("b", Retention(3, 50.0), 0.0)
    for seq in range(1, 5):
        put(store, 1, seq, [b""], topic="b")
    assert store_keys(store, "a") == [(1, 3), (1, 4)]
    assert store_keys(store, "b") == [(1, 2), (1, 3), (1, 4)]
    assert store.retention("a") == Retention(2, 50.0)
    assert store.retention("b") == Retention(3, 50.0)
    assert len(store) == 5
    assert sorted(store.held()) == ["a", "b"]


def test_len_counts_messages_held_not_batches() -> None:
    store = HistoryStore(Retention(6, 50.0))
    assert put(store, 1, 1, [b"1", b"2", b"3", b"4"]) == 4
    assert put(store, 1, 5, [b"5", b"6", b"7"]) == 3
    assert put(store, 1, 1, [b"x", b"y"], topic="other") == 2
    assert len(store) == 6 + 2


def test_configure_trims_what_is_already_stored() -> None:
    store = HistoryStore(Retention(10, 50.0))
    for seq in range(1, 7):
        put(store, 1, seq, [b""], float(seq))
    store.configure(TOPIC, Retention(4, 3.5), 7.0)  # count 4, then age: stored >= 3.5
    assert store_keys(store) == [(1, 4), (1, 5), (1, 6)]
    put(store, 1, 7, [b""], 7.0)
    put(store, 1, 8, [b""], 7.0)
    assert store_keys(store) == [(1, 5), (1, 6), (1, 7), (1, 8)]


def test_a_retention_of_zero_messages_stores_nothing() -> None:
    store = HistoryStore(Retention(0, 50.0))
    assert put(store, 1, 1, [b"x", b"y"]) == 0
    assert store.topics == {} and len(store) == 0
    store.configure("kept", Retention(1, 50.0), 0.0)
    assert put(store, 1, 1, [b"x", b"y"], topic="kept") == 1
    assert store_keys(store, "kept") == [(1, 2)]


def test_expire_applies_the_age_and_forgets_empty_topics() -> None:
    store = HistoryStore(Retention(10, 5.0))
    put(store, 1, 1, [b""], 0.0, topic="old")
    put(store, 1, 1, [b"", b""], 0.0, topic="mixed")
    put(store, 1, 3, [b""], 4.0, topic="mixed")
    store.configure("configured", Retention(10, 5.0), 0.0)
    store.expire(6.0)
    assert sorted(store.topics) == ["mixed"]
    assert store_keys(store, "mixed") == [(1, 3)]
    assert len(store) == 1
    assert sorted(store.held()) == ["configured", "mixed"]
    assert store.retention("configured") == Retention(10, 5.0)  # a setting survives


def test_fetch_newest_and_last_epoch() -> None:
    store = HistoryStore(Retention(100, 50.0))
    assert store.fetch(TOPIC, 0, 0, 10) == []
    assert store.newest(TOPIC) == (0, 0)
    assert store.last_epoch(TOPIC) == 0
    for epoch, seq in [(3, 1), (3, 2), (8, 1), (8, 2), (8, 3)]:
        put(store, epoch, seq, [b"%d" % seq])
    assert [(e, s) for e, s, _ in store.fetch(TOPIC, 3, 1, 3)] == [(3, 2), (8, 1), (8, 2)]
    assert [p for _, _, p in store.fetch(TOPIC, 8, 1, 10)] == [b"2", b"3"]
    assert store.newest(TOPIC) == (8, 3)
    assert store.last_epoch(TOPIC) == 8
    assert store.fetch("other", 0, 0, 10) == []


def test_newest_is_the_last_message_of_the_newest_batch() -> None:
    store = HistoryStore(Retention(100, 50.0))
    put(store, 3, 1, [b"a", b"b"])
    put(store, 8, 1, [b"c", b"d", b"e"])
    assert store.newest(TOPIC) == (8, 3)
    assert store.fetch(TOPIC, 3, 1, 3) == [(3, 2, b"b"), (8, 1, b"c"), (8, 2, b"d")]


def test_drop_forgets_entries_and_retention() -> None:
    store = HistoryStore(Retention(100, 50.0))
    store.configure(TOPIC, Retention(5, 9.0), 0.0)
    put(store, 1, 1, [b""])
    put(store, 1, 1, [b""], topic="other")
    store.drop(TOPIC)
    assert store.fetch(TOPIC, 0, 0, 10) == []
    assert store.retention(TOPIC) == Retention(100, 50.0)
    assert store.held() == ["other"]
    store.drop("never-held")  # no error
    assert len(store) == 1


def test_export_and_absorb_round_trip_keeping_ages() -> None:
    source = HistoryStore(Retention(100, 50.0))
    source.configure(TOPIC, Retention(10, 12.0), 0.0)
    one, two = pack_batch([b"one"]), pack_batch([b"two"])
    put(source, 2, 1, [b"one"], 0.0)
    put(source, 2, 2, [b"two"], 5.0)
    exported = source.export(TOPIC, 10.0)
    assert exported == (TOPIC, Retention(10, 12.0), [[2, 1, 1, one, 10.0], [2, 2, 1, two, 5.0]])

    target = HistoryStore(Retention(100, 50.0))
    assert target.absorb(*exported, now=100.0) == 2  # another node, another clock
    assert target.retention(TOPIC) == Retention(10, 12.0)
    assert list(target.topics[TOPIC].entries) == [
        Entry(2, 1, 1, one, 90.0),
        Entry(2, 2, 1, two, 95.0),
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


def test_export_and_absorb_carry_whole_batches() -> None:
    source = HistoryStore(Retention(100, 50.0))
    first, second = pack_batch([b"a", b"b", b"c"]), pack_batch([b"d", b"e"])
    source.store(TOPIC, 2, 1, 3, first, 0.0)
    source.store(TOPIC, 2, 4, 2, second, 4.0)
    exported = source.export(TOPIC, 10.0)
    assert exported == (TOPIC, None, [[2, 1, 3, first, 10.0], [2, 4, 2, second, 6.0]])

    target = HistoryStore(Retention(100, 50.0))
    assert target.absorb(*exported, now=100.0) == 5
    assert list(target.topics[TOPIC].entries) == [
        Entry(2, 1, 3, first, 90.0),  # still one entry per batch
        Entry(2, 4, 2, second, 94.0),
    ]
    assert target.fetch(TOPIC, 0, 0, 10) == source.fetch(TOPIC, 0, 0, 10)
    assert len(target) == 5
    assert target.absorb(*exported, now=100.0) == 0  # nothing new the second time


def test_absorb_keeps_nothing_that_expired_in_transit() -> None:
    store = HistoryStore(Retention(100, 10.0))
    incoming = [
        [1, 1, 2, pack_batch([b"a", b"b"]), 10.5],
        [1, 3, 2, pack_batch([b"c", b"d"]), 10.0],
    ]
    assert store.absorb(TOPIC, None, incoming, 50.0) == 2
    assert store_keys(store) == [(1, 3), (1, 4)]


def test_export_after_a_partial_trim_sends_only_the_messages_held() -> None:
    source = HistoryStore(Retention(4, 50.0))
    put(source, 1, 1, [b"1", b"2", b"3"], 1.0)
    put(source, 1, 4, [b"4", b"5", b"6"], 2.0)  # 1 and 2 are trimmed, 3 is held
    assert source.topics[TOPIC].skip == 2
    _, _, entries = source.export(TOPIC, 5.0)
    assert entries == [
        [1, 3, 1, pack_batch([b"3"]), 4.0],
        [1, 4, 3, pack_batch([b"4", b"5", b"6"]), 3.0],
    ]
    assert sum(n for _, _, n, _, _ in entries) == len(source) == 4
    assert source.fetch(TOPIC, 0, 0, 10) == [(1, s, b"%d" % s) for s in range(3, 7)]  # unchanged

    target = HistoryStore(Retention(100, 50.0))
    assert target.absorb(TOPIC, None, entries, 5.0) == 4
    assert target.fetch(TOPIC, 0, 0, 10) == source.fetch(TOPIC, 0, 0, 10)


def test_export_of_a_topic_without_its_own_retention_sends_none() -> None:
    source = HistoryStore(Retention(100, 50.0))
    put(source, 1, 1, [b"x"], 3.0)
    blob = pack_batch([b"x"])
    assert source.export(TOPIC, 3.0) == (TOPIC, None, [[1, 1, 1, blob, 0.0]])
    target = HistoryStore(Retention(7, 70.0))
    target.absorb(TOPIC, None, [[1, 1, 1, blob, 0.0]], 3.0)
    assert target.retention(TOPIC) == Retention(7, 70.0)  # its own default
    assert TOPIC not in target.configured
    assert source.export("none", 1.0) == ("none", None, [])


def test_absorb_merges_with_what_is_there_without_duplicates() -> None:
    store = HistoryStore(Retention(100, 50.0))
    for seq in (1, 3, 5):
        put(store, 4, seq, [b"mine"])
    incoming = [[4, seq, 1, pack_batch([b"theirs"]), 0.0] for seq in (1, 2, 3, 4)]
    incoming.append([2, 9, 1, pack_batch([b"theirs"]), 0.0])
    assert store.absorb(TOPIC, None, incoming, 1.0) == 3
    assert store_keys(store) == [(2, 9), (4, 1), (4, 2), (4, 3), (4, 4), (4, 5)]
    stored = {(e, s): p for e, s, p in held(store.topics[TOPIC])}
    assert stored[(4, 1)] == b"mine" and stored[(4, 3)] == b"mine"
    assert stored[(4, 2)] == b"theirs"


def test_absorb_of_a_batch_overlapping_held_batches_merges_the_missing_messages() -> None:
    store = HistoryStore(Retention(100, 50.0))
    put(store, 4, 1, [b"m1", b"m2"])
    put(store, 4, 5, [b"m5", b"m6"])
    incoming = [[4, 1, 7, pack_batch([b"t%d" % s for s in range(1, 8)]), 0.0]]
    assert store.absorb(TOPIC, None, incoming, 1.0) == 3  # 3, 4 and 7
    assert [p for _, _, p in store.fetch(TOPIC, 0, 0, 10)] == [
        b"m1", b"m2", b"t3", b"t4", b"m5", b"m6", b"t7",
    ]  # fmt: skip
    assert store.newest(TOPIC) == (4, 7) and len(store) == 7


# ---------------------------------------------------------------- page


def test_page_serves_messages_one_by_one_across_batch_boundaries() -> None:
    store = HistoryStore(Retention(100, 50.0))
    put(store, 5, 1, [b"a", b"b", b"c"])
    put(store, 5, 4, [b"d", b"e"])
    put(store, 6, 1, [b"f", b"g"])
    everything = [[5, 1, b"a"], [5, 2, b"b"], [5, 3, b"c"], [5, 4, b"d"], [5, 5, b"e"]]
    everything += [[6, 1, b"f"], [6, 2, b"g"]]
    assert store.page(HistoryQuery(TOPIC, since=0)) == (everything, False)
    assert store.page(HistoryQuery(TOPIC, after=(5, 2), limit=3)) == (
        [[5, 3, b"c"], [5, 4, b"d"], [5, 5, b"e"]],
        True,
    )
    assert store.page(HistoryQuery(TOPIC, after=(5, 4), limit=3)) == (
        [[5, 5, b"e"], [6, 1, b"f"], [6, 2, b"g"]],
        False,
    )
    assert store.page(HistoryQuery(TOPIC, since=2)) == ([[6, 2, b"g"]], False)  # newest epoch
    assert store.page(HistoryQuery(TOPIC, after=(5, 1), until=(5, 4))) == (
        [[5, 2, b"b"], [5, 3, b"c"]],
        False,
    )


def test_page_does_not_serve_the_trimmed_part_of_a_batch() -> None:
    store = HistoryStore(Retention(3, 50.0))
    put(store, 5, 1, [b"a", b"b", b"c", b"d"])
    held_now = [[5, 2, b"b"], [5, 3, b"c"], [5, 4, b"d"]]
    assert store.page(HistoryQuery(TOPIC, since=0)) == (held_now, False)
    assert store.page(HistoryQuery(TOPIC, since=1, limit=1)) == ([[5, 2, b"b"]], True)


def test_page_stops_at_about_history_page_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history_module, "HISTORY_PAGE_BYTES", 10)
    store = HistoryStore(Retention(100, 50.0))
    put(store, 1, 1, [b"1234", b"5678", b"9a"])  # 10 bytes: one page
    put(store, 1, 4, [b"b", b"0123456789abc"])  # the next page; the large one alone
    put(store, 1, 6, [b"c"])
    assert store.page(HistoryQuery(TOPIC, since=0)) == (
        [[1, 1, b"1234"], [1, 2, b"5678"], [1, 3, b"9a"]],
        True,
    )
    assert store.page(HistoryQuery(TOPIC, after=(1, 3))) == ([[1, 4, b"b"]], True)
    assert store.page(HistoryQuery(TOPIC, after=(1, 4))) == ([[1, 5, b"0123456789abc"]], True)
    assert store.page(HistoryQuery(TOPIC, after=(1, 5))) == ([[1, 6, b"c"]], False)


# ---------------------------------------------------------------- property

stamp = st.tuples(st.integers(1, 6), st.integers(1, 8), st.integers(1, 4))  # epoch, seq, n
operation = st.one_of(
    st.tuples(st.just("store"), stamp),
    st.tuples(st.just("absorb"), st.lists(stamp, max_size=6)),
)


@settings(max_examples=300, deadline=None)
@given(count=st.integers(1, 12), operations=st.lists(operation, max_size=40))
def test_any_interleaving_of_stores_and_absorbs_is_sorted_unique_and_bounded(
    count: int, operations: list
) -> None:
    store = HistoryStore(Retention(count, 1000.0))
    first_copy: dict[tuple[int, int], bytes] = {}  # every message ever stored

    def batch(op: int, epoch: int, seq: int, n: int) -> tuple[list[bytes], list]:
        data = [b"%d:%d.%d" % (op, epoch, seq + i) for i in range(n)]
        return data, [(epoch, seq + i) for i in range(n)]

    for now, (kind, arg) in enumerate(operations):
        before = set(first_copy)
        if kind == "store":
            epoch, seq, n = arg
            data, stamps = batch(now, *arg)
            returned = put(store, epoch, seq, data, float(now))
            for key, payload in zip(stamps, data, strict=True):
                first_copy.setdefault(key, payload)
        else:
            entries = []
            for epoch, seq, n in arg:
                data, stamps = batch(now, epoch, seq, n)
                entries.append([epoch, seq, n, pack_batch(data), 0.5])
                for key, payload in zip(stamps, data, strict=True):
                    first_copy.setdefault(key, payload)
            returned = store.absorb(TOPIC, None, entries, now)
        stored = store_keys(store)
        assert stored == sorted(set(stored)), "sorted and duplicate-free"
        assert len(stored) <= count and len(store) == len(stored)
        if (topic_history := store.topics.get(TOPIC)) is not None:  # the index of batches
            entries_now = topic_history.entries
            assert topic_history._starts == {(e.epoch, e.seq): e.n for e in entries_now}
        new = set(first_copy) - before
        new_held = len(new & set(stored))
        if kind == "store":
            assert returned == new_held, "the messages new and still held"
        else:  # a later batch of the handoff may trim what an earlier one added
            assert new_held <= returned <= len(new)
        if TOPIC in store.topics:
            check_books(store.topics[TOPIC])
    # More precisely: the newest ``count`` distinct stamps ever stored, each with the
    # payload of its first copy, served the same way by fetch.
    expected = sorted(first_copy)[-count:]
    assert store_keys(store) == expected
    wanted = [(*key, first_copy[key]) for key in expected]
    assert held(store.topics.get(TOPIC)) == wanted
    assert store.fetch(TOPIC, 0, 0, 1000) == wanted


def test_a_history_handed_over_twice_is_not_unpacked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two holders hand over the same batches after a ring change: the second copy of
    each is known by its start, without unpacking it or looking at the others."""
    store = HistoryStore(Retention(100_000, 3600.0))
    entries = [[7, 1 + 3 * i, 3, pack_batch([b"a", b"b", b"c"]), 0.0] for i in range(5000)]
    assert store.absorb("t", None, entries, 10.0) == 15_000
    unpacked: list[int] = []

    def counted(blob: bytes, n: int, limit: int = -1) -> list[bytes]:
        unpacked.append(n)
        return unpack_batch(blob, n, limit)

    monkeypatch.setattr(history_module, "unpack_batch", counted)
    assert store.absorb("t", None, entries, 10.0) == 0
    assert unpacked == [] and len(store) == 15_000


def test_another_owner_s_message_at_a_held_position_is_a_counted_clash() -> None:
    """Two sides of a split opened the same epoch: one position, two messages. The one
    held stays; the other is lost here, and counted (status ``history.clashes``)."""
    store = HistoryStore(Retention(100, 60.0))
    store.store("t", 7, 1, 3, pack_batch([b"a", b"b", b"c"]), 0.0)
    store.store("t", 7, 1, 3, pack_batch([b"a", b"b", b"c"]), 0.0)  # the same: no clash
    store.store("t", 7, 2, 1, pack_batch([b"b"]), 0.0)  # the same message, merged
    assert store.clashes() == 0
    store.store("t", 7, 1, 3, pack_batch([b"x", b"y", b"z"]), 0.0)  # a whole batch
    store.store("t", 7, 3, 2, pack_batch([b"q", b"d"]), 0.0)  # one clash, one new
    assert store.clashes() == 4
    assert [p for *_, p in store.fetch("t", 0, 0, 10)] == [b"a", b"b", b"c", b"d"]
