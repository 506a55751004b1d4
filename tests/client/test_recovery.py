"""Gap recovery rules (zdps/client/recovery.py, docs/PROTOCOL.md §7.9) on ``Recovery``
alone: live messages, gaps, epochs, and a replay with ``since``."""

from __future__ import annotations

import pytest

from tests.client.recovery_cases import entries, gap, m, started
from zdps.client.recovery import (
    Fetch,
    Gap,
    Recovery,
)

pytestmark = pytest.mark.timeout(30)


# ---------------------------------------------------------------------- Recovery: live


def test_messages_in_order_are_delivered_and_move_the_cursor() -> None:
    recovery = Recovery()
    assert recovery.cursor("t") is None
    assert recovery.live(m(3, 7)) == [m(3, 7)]  # the first one starts anywhere
    assert recovery.live(m(3, 8)) == [m(3, 8)]
    assert recovery.live(m(3, 9)) == [m(3, 9)]
    assert recovery.cursor("t") == (3, 9)


def test_duplicates_are_dropped() -> None:
    recovery = started((1, 1), (1, 2), (1, 3))
    for key in [(1, 3), (1, 2), (1, 1), (1, 3)]:
        assert recovery.live(m(*key)) == []
    assert recovery.cursor("t") == (1, 3)
    assert recovery.live(m(1, 4)) == [m(1, 4)]


def test_topics_have_their_own_cursors() -> None:
    recovery = Recovery()
    assert recovery.live(m(1, 1, "a")) == [m(1, 1, "a")]
    assert recovery.live(m(1, 5, "b")) == [m(1, 5, "b")]
    assert recovery.live(m(1, 2, "a")) == [m(1, 2, "a")]
    assert recovery.live(m(1, 3, "b")) == []  # b is past 3 already
    assert recovery.live(m(1, 4, "a")) == Fetch("a", (1, 2), (1, 4))
    assert recovery.cursor("b") == (1, 5)


# ---------------------------------------------------------------------- Recovery: a gap


def test_a_gap_fetches_between_the_cursor_and_the_message() -> None:
    recovery = started((1, 1), (1, 2))
    assert recovery.live(m(1, 9)) == Fetch("t", (1, 2), (1, 9))
    assert recovery.cursor("t") == (1, 2)  # nothing moves until it is recovered


def test_a_fully_recovered_gap_is_delivered_in_order_then_the_message() -> None:
    recovery = started((1, 2))
    assert isinstance(recovery.live(m(1, 6)), Fetch)
    got = recovery.recovered(m(1, 6), entries((1, 3), (1, 4), (1, 5)))
    assert got == [m(1, 3), m(1, 4), m(1, 5), m(1, 6)]
    assert recovery.cursor("t") == (1, 6)
    assert recovery.live(m(1, 7)) == [m(1, 7)]


def test_what_history_lacks_is_gaps_with_exact_ranges() -> None:
    """A leading gap (3), a middle one (6) and a trailing one before the message (8)."""
    recovery = started((1, 1), (1, 2))
    assert recovery.live(m(1, 9)) == Fetch("t", (1, 2), (1, 9))
    got = recovery.recovered(m(1, 9), entries((1, 4), (1, 5), (1, 7)))
    assert got == [gap(1, 3, 3), m(1, 4), m(1, 5), gap(1, 6, 6), m(1, 7), gap(1, 8, 8), m(1, 9)]
    assert recovery.cursor("t") == (1, 9)
    for key in [(1, 3), (1, 6), (1, 8), (1, 5)]:  # lost or delivered: never again
        assert recovery.live(m(*key)) == []


def test_wide_gaps_are_one_gap_each() -> None:
    recovery = started((1, 10))
    assert isinstance(recovery.live(m(1, 40)), Fetch)
    got = recovery.recovered(m(1, 40), entries((1, 20), (1, 21)))
    assert got == [gap(1, 11, 19), m(1, 20), m(1, 21), gap(1, 22, 39), m(1, 40)]


def test_fetched_entries_outside_the_range_are_ignored() -> None:
    recovery = started((1, 1), (1, 2), (1, 3))
    assert recovery.live(m(1, 6)) == Fetch("t", (1, 3), (1, 6))
    got = recovery.recovered(
        m(1, 6),
        entries((0, 9), (1, 2), (1, 3), (1, 4), (1, 6), (1, 7), (2, 1)),
    )
    assert got == [m(1, 4), gap(1, 5, 5), m(1, 6)]
    assert recovery.cursor("t") == (1, 6)
    assert recovery.live(m(1, 7)) == [m(1, 7)]  # (1, 7) came back but was not delivered


def test_a_failed_fetch_is_a_gap_for_the_whole_range() -> None:
    recovery = started((1, 3))
    assert isinstance(recovery.live(m(1, 9)), Fetch)
    assert recovery.recovered(m(1, 9), None) == [gap(1, 4, 8), m(1, 9)]
    assert recovery.cursor("t") == (1, 9)


def test_a_fetch_that_finds_nothing_is_a_gap_for_the_whole_range() -> None:
    recovery = started((1, 3))
    assert isinstance(recovery.live(m(1, 5)), Fetch)
    assert recovery.recovered(m(1, 5), []) == [gap(1, 4, 4), m(1, 5)]


# ---------------------------------------------------------------------- Recovery: epochs


def test_a_new_epoch_fetches_the_tail_of_the_old_one() -> None:
    recovery = started((1, 1), (1, 2), (1, 3))
    assert recovery.live(m(2, 4)) == Fetch("t", (1, 3), (2, 4))
    got = recovery.recovered(m(2, 4), entries((1, 4), (1, 5), (2, 2)))
    # The old epoch's tail, then the new epoch from seq 1: (2, 1) and (2, 3) are lost.
    assert got == [m(1, 4), m(1, 5), gap(2, 1, 1), m(2, 2), gap(2, 3, 3), m(2, 4)]
    assert recovery.cursor("t") == (2, 4)


def test_a_new_epoch_fully_recovered_has_no_gap() -> None:
    recovery = started((1, 3))
    assert isinstance(recovery.live(m(2, 3)), Fetch)
    got = recovery.recovered(m(2, 3), entries((1, 4), (2, 1), (2, 2)))
    assert got == [m(1, 4), m(2, 1), m(2, 2), m(2, 3)]


def test_a_new_epoch_even_at_seq_1_fetches_first() -> None:
    """The old owner may have sequenced messages this subscriber never got."""
    recovery = started((1, 3))
    assert recovery.live(m(2, 1)) == Fetch("t", (1, 3), (2, 1))
    assert recovery.recovered(m(2, 1), entries((1, 4))) == [m(1, 4), m(2, 1)]
    # Nothing says how long the old epoch's tail was: its unknown part is no gap.
    recovery = started((1, 3))
    assert isinstance(recovery.live(m(2, 1)), Fetch)
    assert recovery.recovered(m(2, 1), []) == [m(2, 1)]


def test_a_failed_fetch_at_a_new_epoch_is_a_gap_of_its_first_seqs() -> None:
    recovery = started((1, 3))
    assert isinstance(recovery.live(m(2, 4)), Fetch)
    assert recovery.recovered(m(2, 4), None) == [gap(2, 1, 3), m(2, 4)]


def test_epochs_in_between_are_recovered_with_their_leading_gaps() -> None:
    recovery = started((1, 3))
    assert recovery.live(m(5, 2)) == Fetch("t", (1, 3), (5, 2))
    got = recovery.recovered(m(5, 2), entries((3, 2), (3, 3)))
    assert got == [gap(3, 1, 1), m(3, 2), m(3, 3), gap(5, 1, 1), m(5, 2)]


def test_a_late_message_of_an_older_epoch_is_delivered_once() -> None:
    recovery = started((1, 1), (1, 2))
    assert isinstance(recovery.live(m(2, 1)), Fetch)
    assert recovery.recovered(m(2, 1), []) == [m(2, 1)]  # (1, 3) was not in history yet
    assert recovery.live(m(1, 3)) == [m(1, 3)]  # late, from the previous owner
    assert recovery.cursor("t") == (2, 1)  # the cursor stays
    assert recovery.live(m(1, 3)) == []  # a second copy
    assert recovery.live(m(1, 2)) == []  # delivered long ago
    assert recovery.live(m(2, 2)) == [m(2, 2)]  # in order, no fetch
    assert recovery.live(m(1, 3)) == []


def test_a_late_message_of_an_epoch_never_seen_is_delivered_once() -> None:
    recovery = started((1, 2))
    assert isinstance(recovery.live(m(3, 1)), Fetch)
    assert recovery.recovered(m(3, 1), []) == [m(3, 1)]
    fetch = recovery.live(m(2, 7))  # an epoch never seen, older than 3
    assert fetch == Fetch("t", (2, 0), (2, 7))  # its seqs 1..6 may be in history
    assert recovery.recovered(m(2, 7), [[2, 5, b"2.5"]]) == [
        Gap("t", 2, 1, 4),
        m(2, 5),
        Gap("t", 2, 6, 6),
        m(2, 7),
    ]
    assert recovery.cursor("t") == (3, 1)
    assert recovery.live(m(2, 7)) == []
    assert recovery.live(m(3, 2)) == [m(3, 2)]


def test_a_late_message_past_a_gap_of_its_epoch_does_not_lose_the_gap_silently() -> None:
    recovery = started((1, 3))
    assert isinstance(recovery.live(m(2, 1)), Fetch)
    assert recovery.recovered(m(2, 1), []) == [m(2, 1)]  # the tail of epoch 1 is unknown
    outcome = recovery.live(m(1, 5))  # late: so epoch 1 went on to 5, and 4 was missed
    if isinstance(outcome, Fetch):
        outcome = recovery.recovered(m(1, 5), [])  # history does not hold (1, 4)
    assert m(1, 5) in outcome
    assert any(isinstance(d, Gap) and (d.epoch, d.first, d.last) == (1, 4, 4) for d in outcome)


def test_after_a_recovery_the_next_message_is_in_order() -> None:
    recovery = started((1, 1))
    assert isinstance(recovery.live(m(1, 3)), Fetch)
    recovery.recovered(m(1, 3), entries((1, 2)))
    assert recovery.live(m(1, 4)) == [m(1, 4)]
    assert recovery.live(m(1, 6)) == Fetch("t", (1, 4), (1, 6))


# ---------------------------------------------------------------------- Recovery: since


def test_a_replay_then_live_drops_what_was_replayed() -> None:
    recovery = Recovery()
    assert recovery.start("t", entries((1, 3), (1, 4), (2, 1))) == [m(1, 3), m(1, 4), m(2, 1)]
    assert recovery.cursor("t") == (2, 1)
    assert recovery.live(m(1, 4)) == []
    assert recovery.live(m(2, 1)) == []
    assert recovery.live(m(2, 2)) == [m(2, 2)]


def test_a_replay_reports_gaps_inside_what_history_returned() -> None:
    recovery = Recovery()
    assert recovery.start("t", entries((1, 3), (1, 5), (2, 2))) == [
        m(1, 3),
        gap(1, 4, 4),
        m(1, 5),
        gap(2, 1, 1),
        m(2, 2),
    ]


def test_an_empty_replay_leaves_the_first_live_message_to_start_afresh() -> None:
    recovery = Recovery()
    assert recovery.start("t", []) == []
    assert recovery.live(m(4, 9)) == [m(4, 9)]


def test_a_gap_after_a_replay_fetches_from_its_end() -> None:
    recovery = Recovery()
    recovery.start("t", entries((1, 1), (1, 2)))
    assert recovery.live(m(1, 5)) == Fetch("t", (1, 2), (1, 5))


def test_a_replay_from_a_seq_history_no_longer_holds_starts_with_a_gap() -> None:
    recovery = Recovery()
    assert recovery.start("t", entries((3, 16), (3, 17)), since=1) == [
        gap(3, 1, 15),
        m(3, 16),
        m(3, 17),
    ]
    assert recovery.live(m(3, 18)) == [m(3, 18)]


def test_a_replay_from_seq_0_asks_for_whatever_is_stored() -> None:
    recovery = Recovery()
    assert recovery.start("t", entries((3, 16)), since=0) == [m(3, 16)]


def test_a_replay_that_found_nothing_reports_a_gap_before_the_first_live_message() -> None:
    recovery = Recovery()
    assert recovery.start("t", [], since=5) == []
    fetch = recovery.live(m(2, 9))
    assert fetch == Fetch("t", (2, 4), (2, 9))
    assert recovery.recovered(m(2, 9), entries((2, 8))) == [gap(2, 5, 7), m(2, 8), m(2, 9)]


def test_after_an_empty_replay_a_new_epoch_or_the_asked_seq_starts_afresh() -> None:
    for first in (m(7, 1), m(7, 5)):
        recovery = Recovery()
        recovery.start("t", [], since=5)
        assert recovery.live(first) == [first]
