"""Gap recovery (zdps/client/recovery.py, docs/PROTOCOL.md §7.9): Recovery, Inbox and
Pager without sockets, a property over random losses and retention, then the clients
against the fake node with a PUB of the test's own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.client.fake_node import FakeNode, answer
from zdps import AsyncClient, Client
from zdps.client import recovery
from zdps.client.protocol import Message
from zdps.client.recovery import FETCH_ATTEMPTS, Delivery, Fetch, Gap, Inbox, Pager, Recovery
from zdps.topics import exact_group, prefix_group
from zdps.wire import pack

pytestmark = pytest.mark.timeout(30)

Key = tuple[int, int]


def m(epoch: int, seq: int, topic: str = "t") -> Message:
    return Message(topic, seq, epoch, b"%d.%d" % (epoch, seq))


def entry(epoch: int, seq: int) -> list:
    """A history entry ``[epoch, seq, payload]`` of the message ``m(epoch, seq)``."""
    return [epoch, seq, b"%d.%d" % (epoch, seq)]


def entries(*keys: Key) -> list[list]:
    return [entry(*key) for key in keys]


def gap(epoch: int, first: int, last: int, topic: str = "t") -> Gap:
    return Gap(topic, epoch, first, last)


def started(*keys: Key) -> Recovery:
    """A Recovery that delivered ``keys`` of topic "t" live, in order, without fetching."""
    recovery = Recovery()
    for key in keys:
        assert recovery.live(m(*key)) == [m(*key)]
    return recovery


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


def test_holes_left_by_history_are_gaps_with_exact_ranges() -> None:
    """A leading hole (3), a middle one (6) and a trailing one before the message (8)."""
    recovery = started((1, 1), (1, 2))
    assert recovery.live(m(1, 9)) == Fetch("t", (1, 2), (1, 9))
    got = recovery.recovered(m(1, 9), entries((1, 4), (1, 5), (1, 7)))
    assert got == [gap(1, 3, 3), m(1, 4), m(1, 5), gap(1, 6, 6), m(1, 7), gap(1, 8, 8), m(1, 9)]
    assert recovery.cursor("t") == (1, 9)
    for key in [(1, 3), (1, 6), (1, 8), (1, 5)]:  # lost or delivered: never again
        assert recovery.live(m(*key)) == []


def test_wide_holes_are_one_gap_each() -> None:
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


def test_a_failed_fetch_is_a_gap_for_the_whole_hole() -> None:
    recovery = started((1, 3))
    assert isinstance(recovery.live(m(1, 9)), Fetch)
    assert recovery.recovered(m(1, 9), None) == [gap(1, 4, 8), m(1, 9)]
    assert recovery.cursor("t") == (1, 9)


def test_a_fetch_that_finds_nothing_is_a_gap_for_the_whole_hole() -> None:
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


def test_epochs_in_between_are_recovered_with_their_leading_holes() -> None:
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


def test_a_late_message_past_a_hole_of_its_epoch_does_not_lose_the_hole_silently() -> None:
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


def test_a_replay_reports_holes_inside_what_history_returned() -> None:
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


# ---------------------------------------------------------------------- Inbox


def drain(inbox: Inbox) -> list[Delivery]:
    out = list(inbox.ready)
    inbox.ready.clear()
    return out


def closed(epoch: int, seq: int, topic: str = "t") -> Message:
    return Message(topic, seq, epoch, b"", "closed")


def test_inbox_recovers_through_its_fetches() -> None:
    inbox = Inbox([exact_group("t")], recover=True)
    assert inbox.live(m(1, 1)) is None
    fetch = inbox.live(m(1, 4))
    assert fetch == Fetch("t", (1, 1), (1, 4))
    inbox.recovered(m(1, 4), entries((1, 3)))
    assert drain(inbox) == [m(1, 1), gap(1, 2, 2), m(1, 3), m(1, 4)]


def test_closed_ends_an_exact_topic_and_resets_its_cursor() -> None:
    inbox = Inbox([exact_group("a"), exact_group("b")], recover=True)
    inbox.live(m(1, 1, "a"))
    inbox.live(m(1, 1, "b"))
    assert inbox.live(closed(2, 1, "a")) is None
    assert inbox.unsubscribe == [b"a\x00"]
    assert drain(inbox) == [m(1, 1, "a"), m(1, 1, "b")]  # closed itself is not delivered
    assert inbox.recovery is not None and inbox.recovery.cursor("a") is None
    assert not inbox.ended  # b is still open
    # A message of the deleted topic (still queued, or a new epoch) starts afresh.
    assert inbox.live(m(3, 5, "a")) is None
    assert drain(inbox) == [m(3, 5, "a")]
    inbox.live(m(1, 2, "b"))
    inbox.unsubscribe.clear()
    inbox.live(closed(2, 1, "b"))
    assert inbox.unsubscribe == [b"b\x00"]
    assert not inbox.ended  # until what is ready was read
    assert drain(inbox) == [m(1, 2, "b")]
    assert inbox.ended


def test_closed_under_a_prefix_resets_the_topic_and_goes_on() -> None:
    inbox = Inbox([prefix_group("a")], recover=True)
    inbox.live(m(1, 1, "ab"))
    inbox.live(m(1, 1, "ac"))
    inbox.live(closed(1, 2, "ab"))
    assert inbox.unsubscribe == [] and not inbox.ended
    assert inbox.live(m(2, 3, "ab")) is None  # afresh: no fetch for a new epoch
    assert inbox.live(m(1, 3, "ac")) == Fetch("ac", (1, 1), (1, 3))  # the other goes on
    assert drain(inbox) == [m(1, 1, "ab"), m(1, 1, "ac"), m(2, 3, "ab")]


def test_closed_without_recovery_still_ends_the_subscription() -> None:
    inbox = Inbox([exact_group("t")], recover=False)
    inbox.live(m(1, 1))
    inbox.live(closed(1, 2))
    assert inbox.unsubscribe == [b"t\x00"]
    assert drain(inbox) == [m(1, 1)] and inbox.ended


def test_an_inbox_without_recovery_passes_messages_through() -> None:
    inbox = Inbox([exact_group("t")], recover=False)
    raw = [m(1, 1), m(1, 5), m(1, 5), m(1, 2), m(2, 1), m(1, 9)]
    for message in raw:
        assert inbox.live(message) is None
    assert drain(inbox) == raw


def test_an_inbox_replays_before_live_messages() -> None:
    inbox = Inbox([exact_group("t")], recover=True)
    inbox.replay("t", entries((1, 1), (1, 2)))
    inbox.replay("u", None)  # a failed replay delivers nothing
    inbox.live(m(1, 2))
    inbox.live(m(1, 3))
    assert drain(inbox) == [m(1, 1), m(1, 2), m(1, 3)]


# ---------------------------------------------------------------------- Pager


def test_a_pager_from_since_goes_on_after_the_last_entry() -> None:
    pager = Pager.make("t", since=3)
    assert pager.args == {"topic": "t", "since": 3}
    pager.feed({"entries": entries((2, 3), (2, 4)), "more": True})
    assert not pager.done
    assert pager.args == {"topic": "t", "after": [2, 4]}
    pager.feed({"entries": entries((2, 5)), "more": False})
    assert pager.done
    assert pager.entries == entries((2, 3), (2, 4), (2, 5))


def test_a_pager_for_a_range_keeps_its_end() -> None:
    pager = Pager.make("t", after=(1, 2), until=(2, 5))
    assert pager.args == {"topic": "t", "after": [1, 2], "until": [2, 5]}
    pager.feed({"entries": entries((1, 3), (2, 1)), "more": True})
    assert pager.args == {"topic": "t", "after": [2, 1], "until": [2, 5]}
    pager.feed({"entries": entries((2, 2)), "more": True})
    pager.feed({"entries": [], "more": False})
    assert pager.done and pager.entries == entries((1, 3), (2, 1), (2, 2))


def test_a_pager_stops_at_an_empty_page_even_if_more_is_claimed() -> None:
    pager = Pager.make("t")
    assert pager.args == {"topic": "t", "after": [0, 0]}
    pager.feed({"entries": entries((1, 1)), "more": True})
    assert not pager.done
    pager.feed({"entries": [], "more": True})
    assert pager.done and pager.entries == entries((1, 1))


def test_a_pager_of_one_page() -> None:
    pager = Pager.make("t", since=0)
    pager.feed({"entries": [], "more": False})
    assert pager.done and pager.entries == []


# ---------------------------------------------------------------------- the property


def serve(history: list[Key], args: dict, limit: int) -> dict:
    """One page of ``history`` as a node answers a ``history`` request (§7.9)."""
    if "since" in args:
        newest = history[-1][0] if history else 0
        start: Key = (newest, args["since"]) if args["since"] else (0, 0)
        match = [key for key in history if key >= start]
    else:
        after = tuple(args["after"])
        match = [key for key in history if key > after]
    if "until" in args:
        match = [key for key in match if key < tuple(args["until"])]
    return {"entries": entries(*match[:limit]), "more": len(match) > limit}


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Key], list[int]]:
    """A true sequence over 1-3 epochs, and the indices of it delivered live, in order,
    with some dropped and some duplicated (a copy of an earlier live one, later)."""
    epochs = sorted(draw(st.sets(st.integers(1, 9), min_size=1, max_size=3)))
    true = [(e, s) for e in epochs for s in range(1, draw(st.integers(1, 8)) + 1)]
    kept = draw(st.lists(st.booleans(), min_size=len(true), max_size=len(true)))
    live = [i for i, keep in enumerate(kept) if keep] or [draw(st.integers(0, len(true) - 1))]
    with_copies: list[int] = []
    for i in live:
        with_copies.append(i)
        if draw(st.integers(0, 3)) == 0:
            with_copies.append(draw(st.sampled_from(with_copies)))
    return true, with_copies


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.integers(1, 4), st.data())
def test_recovery_delivers_or_reports_everything_history_allows(
    scenario: tuple[list[Key], list[int]], page: int, data: st.DataObject
) -> None:
    """Live messages with losses and copies; each fetch is answered, page by page, from a
    history that is a window of the true sequence (retention drops its oldest), fails at
    times, or comes back with entries outside the range asked for."""
    true, live = scenario
    position = {key: i for i, key in enumerate(true)}
    recovery = Recovery()
    out: list[Delivery] = []
    fetches: list[tuple[Key, Key, set[Key], bool]] = []  # (after, until, held, answered)
    oldest = 0  # retention only ever drops the oldest entries

    def fetch(request: Fetch) -> list[list] | None:
        nonlocal oldest
        until = position[request.until]
        # History: the true sequence from `oldest` up to at least the live message.
        oldest = data.draw(st.integers(oldest, len(true)), label="oldest")
        newest = data.draw(st.integers(max(oldest, until + 1), len(true)), label="newest")
        history = true[oldest:newest]
        if data.draw(st.integers(0, 5), label="fails") == 0:
            fetches.append((request.after, request.until, set(), False))
            return None
        fetches.append(
            (
                request.after,
                request.until,
                {k for k in history if request.after < k < request.until},
                True,
            )
        )
        pager = Pager.make(request.topic, after=request.after, until=request.until)
        assert pager.args == {
            "topic": "t",
            "after": list(request.after),
            "until": list(request.until),
        }
        while not pager.done:
            pager.feed(serve(history, pager.args, page))
        got = pager.entries
        if data.draw(st.booleans(), label="sloppy"):  # a node that ignores the range
            got = [entry(*k) for k in history if k <= request.after] + got
            got += [entry(*k) for k in history if k >= request.until]
        return got

    for i in live:
        msg = m(*true[i])
        cursor = recovery.cursor("t")
        state = recovery.topics.get("t")
        oldest_known = min(state.seen.items()) if state else None
        outcome = recovery.live(msg)
        if isinstance(outcome, Fetch):
            # A gap fetches from the cursor; a new epoch from the oldest known position.
            after = oldest_known if msg.epoch > cursor[0] else cursor
            assert outcome == Fetch("t", after, true[i])
            outcome = recovery.recovered(msg, fetch(outcome))
            _, _, held, answered = fetches[-1]
            if answered:  # a gap reported after an answer is not in history
                assert not held & gap_keys(outcome), (held, outcome)
        out += outcome

    # No duplicate; messages and gaps in the true sequence, in seq order per epoch (an
    # older epoch's messages may come late, after a newer epoch's).
    keys: list[Key] = []
    delivered: set[Key] = set()
    for item in out:
        if isinstance(item, Gap):
            assert item.topic == "t" and 1 <= item.first <= item.last
            keys += [(item.epoch, s) for s in range(item.first, item.last + 1)]
        else:
            assert item == m(item.epoch, item.seq)  # its own payload
            keys.append((item.epoch, item.seq))
            delivered.add(keys[-1])
    assert len(keys) == len(set(keys)), out
    assert set(keys) <= set(true)
    for epoch in {e for e, _ in keys}:
        seqs = [s for e, s in keys if e == epoch]
        assert seqs == sorted(seqs), out

    # Every live message is delivered, and so is everything history held in a fetch
    # (unless an earlier, failed, fetch reported it lost).
    covered = set(keys)
    assert {true[i] for i in live} <= delivered
    for after, until, held, _ in fetches:
        assert held <= covered, (after, until, held - covered)

    # From the first live message to the last, everything is delivered or in a gap,
    # except an epoch's unknown tail: after the last delivered of its epoch, in a
    # fetched range, and never in history when a fetch covered it.
    last_delivered: dict[int, int] = {}
    for epoch, seq in delivered:
        last_delivered[epoch] = max(seq, last_delivered.get(epoch, 0))
    for key in true[live[0] : max(live) + 1]:
        if key in covered:
            continue
        assert key[1] > last_delivered.get(key[0], 0), (key, out)
        spans = [held for after, until, held, _ in fetches if after < key < until]
        assert spans and all(key not in held for held in spans), (key, fetches)


def gap_keys(items: list[Delivery]) -> set[Key]:
    return {(g.epoch, s) for g in items if isinstance(g, Gap) for s in range(g.first, g.last + 1)}


# ---------------------------------------------------------------------- the clients


class Pub:
    """The fake node's PUB: an XPUB on its advertised endpoint, driven by the test."""

    def __init__(self, node: FakeNode) -> None:
        self.sock = node.ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(node.pub)

    def joined(self, group: bytes, timeout: float = 5.0) -> None:
        """Wait until a SUB subscribed to ``group`` (it is connected: nothing sent is lost)."""
        while self.sock.poll(int(timeout * 1000)):
            if self.sock.recv() == b"\x01" + group:
                return
        raise AssertionError(f"no subscription to {group!r}")

    def send(self, message: Message) -> None:
        header: dict[str, Any] = {"seq": message.seq, "epoch": message.epoch}
        if message.type != "message":
            header["type"] = message.type
        self.sock.send_multipart([message.topic.encode() + b"\x00", pack(header), message.data])

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def pub(node: FakeNode) -> Iterator[Pub]:
    fake = Pub(node)
    yield fake
    fake.close()


def history_node(
    held: list[Key], page: int = 2, fail: bool = False
) -> Callable[[FakeNode, bytes, list], None]:
    """A handler that answers ``history`` from ``held`` (or refuses it), else as a node."""

    def handler(node: FakeNode, client: bytes, msg: list) -> None:
        if msg[1] == "req" and msg[3] == "history":
            if fail:
                node.send(client, "rep", msg[2], False, {"code": "owner_lost", "message": "x"})
            else:
                node.send(client, "rep", msg[2], True, serve(held, msg[4], page))
        else:
            answer(node, client, msg)

    return handler


def history_args(node: FakeNode) -> list[dict]:
    return [request[4] for request in node.requests("history")]


def received(subscription: Any, n: int) -> list[Delivery]:
    out = []
    for _ in range(n):
        item = subscription.recv(timeout=5)
        assert item is not None, out
        out.append(item)
    return out


def test_a_client_fetches_a_gap_page_by_page(
    node: FakeNode, pub: Pub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recovery, "GAP_RECHECK", 0.01)
    node.handler = history_node([(1, k) for k in range(3, 9)], page=2)
    with Client(node.endpoint, timeout=3) as client, client.subscribe("t") as subscription:
        pub.joined(exact_group("t"))
        for key in [(1, 1), (1, 6), (1, 7)]:
            pub.send(m(*key))
        got = received(subscription, 7)
        assert subscription.recv(timeout=0.1) is None
    assert got == [m(1, 1), gap(1, 2, 2), m(1, 3), m(1, 4), m(1, 5), m(1, 6), m(1, 7)]
    pages = [
        {"topic": "t", "after": [1, 1], "until": [1, 6]},
        {"topic": "t", "after": [1, 4], "until": [1, 6]},
    ]
    assert history_args(node) == pages * 2  # (1, 2) is gone: asked again before reporting


def test_a_client_recovers_across_an_epoch_change(node: FakeNode, pub: Pub) -> None:
    node.handler = history_node([(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)], page=10)
    with Client(node.endpoint, timeout=3) as client, client.subscribe("t") as subscription:
        pub.joined(exact_group("t"))
        for key in [(1, 1), (2, 3), (1, 2)]:  # the last one is a late duplicate
            pub.send(m(*key))
        got = received(subscription, 6)
        assert subscription.recv(timeout=0.1) is None
    assert got == [m(1, 1), m(1, 2), m(1, 3), m(2, 1), m(2, 2), m(2, 3)]
    assert history_args(node) == [{"topic": "t", "after": [1, 1], "until": [2, 3]}]


def test_a_failed_fetch_is_one_gap_for_the_whole_hole(
    node: FakeNode, pub: Pub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recovery, "FETCH_RETRY", 0.01)
    monkeypatch.setattr(recovery, "GAP_RECHECK", 0.01)
    node.handler = history_node([], fail=True)
    with Client(node.endpoint, timeout=3) as client, client.subscribe("t") as subscription:
        pub.joined(exact_group("t"))
        for key in [(1, 1), (1, 6), (1, 7)]:
            pub.send(m(*key))
        assert received(subscription, 4) == [m(1, 1), gap(1, 2, 5), m(1, 6), m(1, 7)]
    assert history_args(node) == [{"topic": "t", "after": [1, 1], "until": [1, 6]}] * (
        2 * FETCH_ATTEMPTS  # every attempt, then every attempt once more before reporting
    )


def test_since_replays_history_then_goes_live_without_duplicates(node: FakeNode, pub: Pub) -> None:
    node.handler = history_node([(1, 1), (1, 2), (2, 1), (2, 2), (2, 3)], page=1)
    with Client(node.endpoint, timeout=3) as client, client.subscribe("t", since=2) as subscription:
        pub.joined(exact_group("t"))
        for key in [(2, 2), (2, 3), (2, 4)]:  # published while it was replaying
            pub.send(m(*key))
        got = received(subscription, 3)
        assert subscription.recv(timeout=0.1) is None
    assert got == [m(2, 2), m(2, 3), m(2, 4)]
    assert history_args(node) == [
        {"topic": "t", "since": 2},  # from seq 2 of the newest epoch
        {"topic": "t", "after": [2, 2]},
    ]


def test_without_recover_messages_come_raw(node: FakeNode, pub: Pub) -> None:
    node.handler = history_node([(1, k) for k in range(1, 9)])
    raw = [m(1, 1), m(1, 5), m(1, 5), m(1, 3), m(2, 1)]
    with Client(node.endpoint, timeout=3) as client, client.subscribe("t", recover=False) as sub:
        pub.joined(exact_group("t"))
        for message in raw:
            pub.send(message)
        assert received(sub, len(raw)) == raw
        pub.send(closed(2, 2))
        assert sub.recv(timeout=5) is None and sub.ended
    assert history_args(node) == []


def test_an_async_client_fetches_a_gap_and_ends_on_closed(
    node: FakeNode, pub: Pub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recovery, "GAP_RECHECK", 0.01)
    node.handler = history_node([(1, 2), (1, 4), (2, 1)], page=1)

    async def scenario() -> list[Delivery]:
        async with AsyncClient(node.endpoint, timeout=3) as client:
            subscription = await client.subscribe("t")
            pub.joined(exact_group("t"))
            for message in [m(1, 1), m(2, 2), m(2, 3), closed(3, 1)]:
                pub.send(message)
            try:
                return [item async for item in subscription]
            finally:
                subscription.close()

    got = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert got == [m(1, 1), m(1, 2), gap(1, 3, 3), m(1, 4), m(2, 1), m(2, 2), m(2, 3)]
    # (1, 3) is gone: the range is asked again, page by page, before it is reported.
    assert [args["after"] for args in history_args(node)] == [[1, 1], [1, 2], [1, 4]] * 2
