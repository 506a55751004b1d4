"""Batch-aware subscriptions without IO (docs/PROTOCOL.md §9.5): the batch PUB's frames
decoded, ``Recovery.follows`` (the fast path), and the ``Inbox`` taking whole batches,
expanding them, and falling back to message-by-message recovery when one does not
follow on. The property at the end checks that feeding an inbox batches is the same
as feeding it their messages one by one: same deliveries, same requests, same state."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zdps
from tests.client.recovery_cases import Key, closed, entries, gap, m, serve, started
from zdps.client.protocol import Batch, Message, decode_batch_delivery
from zdps.client.recovery import FETCH_ATTEMPTS, GAP_RECHECK, Delivery, Recovery
from zdps.client.steps import Report, Request, Sleep
from zdps.client.subscription import Inbox, notices, subscriber_name
from zdps.topics import exact_group, prefix_group
from zdps.wire import ProtocolError, pack
from zdps.wire.api import HistoryQuery, Lost
from zdps.wire.batches import MAX_BATCH, pack_batch
from zdps.wire.delivery import batch_header, closed_header, decode_batch_header, message_header

pytestmark = pytest.mark.timeout(60)


def b(epoch: int, seq: int, n: int, topic: str = "t") -> Batch:
    """The batch of ``m(epoch, seq)``..``m(epoch, seq + n - 1)``."""
    return Batch(topic, seq, epoch, [m(epoch, s, topic).data for s in range(seq, seq + n)])


def frames(batch: Batch) -> list[bytes]:
    """The three frames the batch PUB sends for ``batch``."""
    header = batch_header(batch.seq, batch.epoch, len(batch.payloads))
    return [batch.topic.encode() + b"\x00", header, pack_batch(batch.payloads)]


def take_all(inbox: Inbox, whole: bool = False) -> list[Delivery | Batch]:
    out = []
    while inbox.ready:
        out.append(inbox.take(whole))
    return out


def run(steps: Generator | None, answer: Any) -> list:
    """Carry out a recovery's steps, answering each Request with ``answer(query)``; every
    step it took, in order."""
    taken: list = []
    if steps is None:
        return taken
    try:
        step = next(steps)
        while True:
            if isinstance(step, Report):  # the lost report to the node (test_loss_notices.py)
                step = next(steps)
                continue
            taken.append(step)
            step = steps.send(answer(step.op) if isinstance(step, Request) else None)
    except StopIteration:
        return taken


# ---------------------------------------------------------------------- the frames


def test_a_batch_delivery_decodes_to_a_batch() -> None:
    got = decode_batch_delivery(frames(b(3, 7, 3)))
    assert type(got) is Batch
    assert got == Batch("t", 7, 3, [b"3.7", b"3.8", b"3.9"])
    assert got.messages() == [m(3, 7), m(3, 8), m(3, 9)]
    one = decode_batch_delivery([b"a/b\x00", batch_header(1, 1, 1), pack_batch([b""])])
    assert one == Batch("a/b", 1, 1, [b""])
    full = decode_batch_delivery(
        [b"t\x00", batch_header(1, 1, MAX_BATCH), pack_batch([b"x"] * MAX_BATCH)]
    )
    assert len(full.payloads) == MAX_BATCH


def test_the_batch_header_round_trips() -> None:
    assert decode_batch_header(batch_header(5, 2, 9)) == (5, 2, 9, "message")
    assert decode_batch_header(closed_header(6, 2)) == (6, 2, 0, "closed")
    # Newer keys are ignored, as in every delivery header.
    assert decode_batch_header(pack({"seq": 1, "epoch": 1, "n": 1, "x": [1]})) == (
        1,
        1,
        1,
        "message",
    )


def test_closed_on_the_batch_pub_decodes_to_a_closed_message() -> None:
    got = decode_batch_delivery([b"t\x00", closed_header(6, 2), b""])
    assert got == Message("t", 6, 2, b"", "closed") == closed(2, 6)
    assert type(got) is Message


def test_zdps_exports_batch() -> None:
    assert zdps.Batch is Batch and "Batch" in zdps.__all__


GOOD_HEADER = batch_header(1, 1, 2)
GOOD_BLOB = pack_batch([b"x", b"y"])


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param([b"t\x00", GOOD_HEADER], id="two frames"),
        pytest.param([b"t\x00", GOOD_HEADER, GOOD_BLOB, b""], id="four frames"),
        pytest.param([], id="no frames"),
        pytest.param([b"t", GOOD_HEADER, GOOD_BLOB], id="topic without NUL"),
        pytest.param([b"", GOOD_HEADER, GOOD_BLOB], id="empty topic frame"),
        pytest.param([b"t\x00", b"\xc1", GOOD_BLOB], id="header not msgpack"),
        pytest.param([b"t\x00", pack([1, 1, 2]), GOOD_BLOB], id="header not a map"),
        pytest.param([b"t\x00", pack({"seq": 1, "epoch": 1}), GOOD_BLOB], id="no n"),
        pytest.param([b"t\x00", pack({"epoch": 1, "n": 2}), GOOD_BLOB], id="no seq"),
        pytest.param([b"t\x00", pack({"seq": "1", "epoch": 1, "n": 2}), GOOD_BLOB], id="str seq"),
        pytest.param([b"t\x00", pack({"seq": 1, "epoch": 1, "n": 0}), b""], id="n 0"),
        pytest.param([b"t\x00", pack({"seq": 1, "epoch": 1, "n": -1}), GOOD_BLOB], id="n < 0"),
        pytest.param([b"t\x00", pack({"seq": 1, "epoch": 1, "n": "2"}), GOOD_BLOB], id="str n"),
        pytest.param([b"t\x00", pack({"seq": 1, "epoch": 1, "n": True}), GOOD_BLOB], id="bool n"),
        pytest.param([b"t\x00", pack({"seq": 1, "epoch": 1, "n": 2.0}), GOOD_BLOB], id="float n"),
        pytest.param(
            [b"t\x00", batch_header(1, 1, MAX_BATCH + 1), pack_batch([b"x"] * (MAX_BATCH + 1))],
            id="n over MAX_BATCH",
        ),
        pytest.param(
            [b"t\x00", pack({"seq": 1, "epoch": 1, "type": "closed", "n": 1}), b""],
            id="closed with n",
        ),
        pytest.param([b"t\x00", GOOD_HEADER, b"\xc1"], id="blob not msgpack"),
        pytest.param([b"t\x00", GOOD_HEADER, b""], id="blob empty"),
        pytest.param([b"t\x00", GOOD_HEADER, pack_batch([b"x"])], id="blob too short"),
        pytest.param([b"t\x00", GOOD_HEADER, pack_batch([b"x", b"y", b"z"])], id="blob too long"),
        pytest.param([b"t\x00", GOOD_HEADER, pack(["x", "y"])], id="blob of str"),
        pytest.param([b"t\x00", GOOD_HEADER, pack([b"x", 1])], id="blob with an int"),
        pytest.param([b"t\x00", GOOD_HEADER, pack({b"x": b"y", b"z": b"w"})], id="blob a map"),
        pytest.param([b"t\x00", GOOD_HEADER, GOOD_BLOB + b"\x90"], id="blob with extra data"),
        pytest.param([b"t\x00", message_header(1, 1), b"x"], id="a raw PUB message"),
    ],
)
def test_malformed_batch_deliveries_are_protocol_errors(bad: list[bytes]) -> None:
    with pytest.raises(ProtocolError):
        decode_batch_delivery(bad)


def test_a_topic_that_is_not_utf8_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        decode_batch_delivery([b"\xff\x00", GOOD_HEADER, GOOD_BLOB])


# ---------------------------------------------------------------------- Recovery.follows


def test_the_first_batch_starts_anywhere_and_the_next_follows_on() -> None:
    recovery = Recovery()
    assert recovery.follows("t", 3, 7, 4)
    assert recovery.cursor("t") == (3, 10)
    assert recovery.follows("t", 3, 11, 1)
    assert recovery.cursor("t") == (3, 11)
    assert recovery.live(m(3, 12)) == [m(3, 12)]  # message by message goes on from there
    assert recovery.follows("t", 3, 13, 2)
    assert recovery.cursor("t") == (3, 14)


@pytest.mark.parametrize(
    ("epoch", "seq", "n", "why"),
    [
        (1, 5, 2, "a gap before it"),
        (1, 3, 1, "a duplicate"),
        (1, 2, 4, "overlaps what was delivered"),
        (1, 1, 9, "overlaps from the start"),
        (2, 1, 3, "a new epoch even at seq 1"),
        (2, 4, 3, "a new epoch"),
        (0, 1, 1, "an older epoch never seen"),
    ],
)
def test_a_batch_that_does_not_follow_on_changes_nothing(
    epoch: int, seq: int, n: int, why: str
) -> None:
    recovery = started((1, 1), (1, 2), (1, 3))
    before = recovery.topics["t"].cursor, dict(recovery.topics["t"].seen)
    assert not recovery.follows("t", epoch, seq, n), why
    assert (recovery.topics["t"].cursor, recovery.topics["t"].seen) == before


def test_a_late_batch_of_an_older_epoch_follows_on_without_moving_the_cursor() -> None:
    recovery = started((1, 2))
    assert recovery.live(m(2, 1)) != [m(2, 1)]  # a new epoch fetches first
    assert recovery.recovered(m(2, 1), []) == [m(2, 1)]
    assert recovery.follows("t", 1, 3, 2)  # epoch 1 goes on: late, but in order
    assert recovery.cursor("t") == (2, 1)
    assert recovery.live(m(1, 4)) == []  # it counts as delivered
    assert recovery.follows("t", 2, 2, 3)
    assert recovery.cursor("t") == (2, 4)


def test_a_replay_that_found_nothing_makes_the_first_batch_look_closer() -> None:
    recovery = Recovery()
    assert recovery.start("t", [], since=5) == []
    assert not recovery.follows("t", 2, 9, 3)
    assert recovery.expected == {"t": 5}  # left for ``live`` to decide


def test_after_a_replay_a_batch_follows_on_from_its_end() -> None:
    recovery = Recovery()
    recovery.start("t", entries((1, 1), (1, 2)), since=1)
    assert not recovery.follows("t", 1, 2, 3)  # (1, 2) was replayed
    assert recovery.follows("t", 1, 3, 3)
    assert recovery.cursor("t") == (1, 5)


def test_after_forget_a_batch_starts_afresh() -> None:
    recovery = started((4, 9))
    recovery.forget("t")
    assert recovery.follows("t", 1, 1, 2)
    assert recovery.cursor("t") == (1, 2)


def test_topics_follow_on_each_on_its_own() -> None:
    recovery = Recovery()
    assert recovery.follows("a", 1, 1, 5)
    assert recovery.follows("b", 1, 10, 5)
    assert not recovery.follows("a", 1, 15, 1)
    assert recovery.follows("a", 1, 6, 1)
    assert recovery.follows("b", 1, 15, 1)
    assert (recovery.cursor("a"), recovery.cursor("b")) == ((1, 6), (1, 15))


# ---------------------------------------------------------------------- Inbox: take


def test_take_expands_a_batch_into_its_messages_in_order() -> None:
    inbox = Inbox([exact_group("t")], recover=True)
    assert inbox.arrived(b(1, 1, 3), pytest.fail) is None
    assert inbox.arrived(b(1, 4, 2), pytest.fail) is None
    assert list(inbox.ready) == [b(1, 1, 3), b(1, 4, 2)]  # whole, no work per message
    assert inbox.take() == m(1, 1)
    assert list(inbox.ready) == [m(1, 2), m(1, 3), b(1, 4, 2)]  # the rest goes first
    assert take_all(inbox) == [m(1, 2), m(1, 3), m(1, 4), m(1, 5)]
    assert not inbox.ready


def test_take_whole_returns_a_batch_as_it_arrived() -> None:
    inbox = Inbox([exact_group("t")], recover=True)
    inbox.arrived(b(1, 1, 3), pytest.fail)
    inbox.arrived(b(1, 4, 1), pytest.fail)
    first = inbox.take(whole=True)
    assert type(first) is Batch and first == b(1, 1, 3)
    assert inbox.take(whole=True) == b(1, 4, 1)
    # Half taken message by message, the rest of a batch comes as messages.
    inbox.arrived(b(1, 5, 3), pytest.fail)
    assert inbox.take() == m(1, 5)
    assert inbox.take(whole=True) == m(1, 6)
    assert inbox.take(whole=True) == m(1, 7)


def test_without_recovery_batches_pass_through_whole() -> None:
    inbox = Inbox([exact_group("t")], recover=False)
    raw = [b(1, 1, 2), b(1, 9, 2), b(1, 9, 2), b(1, 2, 1), b(2, 1, 3)]
    for batch in raw:
        assert inbox.arrived(batch, pytest.fail) is None
    assert take_all(inbox, whole=True) == raw
    for batch in raw:
        inbox.arrived(batch, pytest.fail)
    assert take_all(inbox) == [msg for batch in raw for msg in batch.messages()]


# ---------------------------------------------------------------------- Inbox: recovery


def test_a_batch_after_a_gap_fetches_then_delivers_the_rest_in_order_once() -> None:
    inbox = Inbox([exact_group("t")], recover=True)
    assert inbox.arrived(b(1, 1, 2), pytest.fail) is None
    steps = inbox.arrived(b(1, 5, 4), pytest.fail)  # 3 and 4 never arrived
    assert steps is not None
    assert list(inbox.ready) == [b(1, 1, 2)]  # nothing of the new batch before what it missed
    assert next(steps) == Request(HistoryQuery("t", after=(1, 2), until=(1, 5)))
    report = steps.send({"entries": entries((1, 3), (1, 4)), "more": False})
    assert report == Report(Lost("t", 2, 2, subscriber_name()))  # 2 missed, 2 recovered
    with pytest.raises(StopIteration):
        next(steps)
    assert take_all(inbox, whole=True) == [b(1, 1, 2), m(1, 3), m(1, 4), *b(1, 5, 4).messages()]
    # Caught up: the next batch is whole again; an overlapping one gives only what is new.
    assert inbox.arrived(b(1, 9, 2), pytest.fail) is None
    assert inbox.arrived(b(1, 7, 6), pytest.fail) is None
    assert take_all(inbox, whole=True) == [b(1, 9, 2), m(1, 11), m(1, 12)]
    assert inbox.recovery is not None and inbox.recovery.cursor("t") == (1, 12)


def test_a_batch_history_cannot_fill_in_reports_the_gap_then_the_batch() -> None:
    inbox = Inbox([exact_group("t")], recover=True)
    inbox.arrived(b(1, 1, 1), pytest.fail)
    steps = inbox.arrived(b(1, 5, 2), pytest.fail)
    held = entries((1, 3))
    taken = run(steps, lambda query: {"entries": held, "more": False})
    query = HistoryQuery("t", after=(1, 1), until=(1, 5))
    assert taken == [Request(query), Sleep(GAP_RECHECK), Request(query)]  # asked twice
    assert take_all(inbox) == [m(1, 1), gap(1, 2, 2), m(1, 3), gap(1, 4, 4), m(1, 5), m(1, 6)]


def test_a_failed_fetch_for_a_batch_is_one_gap_and_the_batch_still_comes() -> None:
    inbox = Inbox([exact_group("t")], recover=True)
    inbox.arrived(b(1, 1, 1), pytest.fail)
    taken = run(inbox.arrived(b(1, 4, 3), pytest.fail), lambda query: None)
    assert taken.count(Request(HistoryQuery("t", after=(1, 1), until=(1, 4)))) == 2 * FETCH_ATTEMPTS
    assert take_all(inbox) == [m(1, 1), gap(1, 2, 3), m(1, 4), m(1, 5), m(1, 6)]


def test_a_batch_of_a_new_epoch_fetches_the_old_tail_once() -> None:
    inbox = Inbox([exact_group("t")], recover=True)
    inbox.arrived(b(1, 1, 3), pytest.fail)
    taken = run(
        inbox.arrived(b(2, 2, 3), pytest.fail),
        lambda query: serve([(1, 4), (2, 1)], query.args(), 10),
    )
    assert taken == [Request(HistoryQuery("t", after=(1, 3), until=(2, 2)))]
    assert take_all(inbox) == [
        m(1, 1),
        m(1, 2),
        m(1, 3),
        m(1, 4),
        m(2, 1),
        m(2, 2),
        m(2, 3),
        m(2, 4),
    ]
    assert inbox.arrived(b(2, 5, 1), pytest.fail) is None  # then whole again
    assert take_all(inbox, whole=True) == [b(2, 5, 1)]


def test_the_first_batch_after_an_empty_replay_fetches_what_since_asked_for() -> None:
    inbox = Inbox([exact_group("t")], recover=True)
    inbox.replay("t", [], since=3)
    taken = run(
        inbox.arrived(b(1, 6, 2), pytest.fail),
        lambda query: serve([(1, 3), (1, 4), (1, 5)], query.args(), 10),
    )
    assert taken == [Request(HistoryQuery("t", after=(1, 2), until=(1, 6)))]
    assert take_all(inbox) == [m(1, 3), m(1, 4), m(1, 5), m(1, 6), m(1, 7)]


# ---------------------------------------------------------------------- Inbox: closed


def test_closed_ends_a_batch_subscription() -> None:
    inbox = Inbox([exact_group("t")], recover=True)
    dropped: list[bytes] = []
    inbox.arrived(b(1, 1, 2), dropped.append)
    assert (
        inbox.arrived(decode_batch_delivery([b"t\x00", closed_header(3, 1), b""]), dropped.append)
        is None
    )
    assert sorted(dropped) == sorted(notices([b"t\x00"]))  # and its loss notices
    assert not inbox.ended  # until the batch before it was taken
    assert inbox.take(whole=True) == b(1, 1, 2)
    assert inbox.ended
    assert inbox.recovery is not None and inbox.recovery.cursor("t") is None


def test_closed_ends_one_topic_and_the_others_go_on() -> None:
    inbox = Inbox([exact_group("a"), exact_group("b")], recover=True)
    dropped: list[bytes] = []
    inbox.arrived(b(1, 1, 2, "a"), dropped.append)
    inbox.arrived(b(1, 1, 2, "b"), dropped.append)
    inbox.arrived(closed(1, 3, "a"), dropped.append)
    assert sorted(dropped) == sorted(notices([b"a\x00"]))
    assert inbox.arrived(b(1, 3, 1, "b"), dropped.append) is None
    assert take_all(inbox) == [m(1, 1, "a"), m(1, 2, "a"), m(1, 1, "b"), m(1, 2, "b"), m(1, 3, "b")]
    assert not inbox.ended
    inbox.arrived(closed(1, 4, "b"), dropped.append)
    assert sorted(dropped) == sorted(notices([b"a\x00", b"b\x00"])) and inbox.ended


def test_closed_without_recovery_ends_a_batch_subscription() -> None:
    inbox = Inbox([exact_group("t")], recover=False)
    dropped: list[bytes] = []
    inbox.arrived(b(1, 1, 2), dropped.append)
    inbox.arrived(closed(1, 3), dropped.append)
    assert dropped == [b"t\x00"]
    assert take_all(inbox) == [m(1, 1), m(1, 2)] and inbox.ended


def test_after_closed_under_a_prefix_a_batch_of_the_topic_starts_afresh() -> None:
    inbox = Inbox([prefix_group("t")], recover=True)
    inbox.arrived(b(1, 1, 5), pytest.fail)
    inbox.arrived(closed(1, 6), pytest.fail)
    assert inbox.arrived(b(2, 3, 2), pytest.fail) is None  # no fetch: a new topic
    assert take_all(inbox, whole=True) == [b(1, 1, 5), b(2, 3, 2)]
    assert not inbox.ended


# ---------------------------------------------------------------------- the property

TOPICS = ("t", "u")
KINDS = ("next", "next", "next", "gap", "dup", "epoch", "late", "closed")


@st.composite
def arrivals(draw: st.DrawFn) -> list[Batch | Message]:
    """What a batch PUB may send one subscriber: batches in order, with gaps (drops),
    duplicates and overlaps, new epochs (owner changes, sometimes many: more than the
    epochs a topic remembers), late batches of an older epoch, and ``closed``."""
    out: list[Batch | Message] = []
    at = {topic: (1, 1) for topic in TOPICS}  # (epoch, next seq) per topic
    ends: dict[str, dict[int, int]] = {topic: {} for topic in TOPICS}  # epoch -> next seq
    for _ in range(draw(st.integers(1, 14))):
        topic = draw(st.sampled_from(TOPICS))
        epoch, seq = at[topic]
        kind = draw(st.sampled_from(KINDS))
        n = draw(st.integers(1, 5))
        if kind == "gap":
            seq += draw(st.integers(1, 4))
        elif kind == "dup":
            seq = max(1, seq - draw(st.integers(1, 6)))
        elif kind == "epoch":
            epoch += draw(st.integers(1, 4))
            seq = draw(st.integers(1, 3))
        elif kind == "late":  # the tail of an older epoch, often right after what was sent
            older = sorted(e for e in ends[topic] if e < epoch)
            epoch = draw(st.sampled_from(older)) if older else max(1, epoch - 1)
            seq = ends[topic].get(epoch, 1) + draw(st.integers(-2, 3))
            seq = max(1, seq)
        elif kind == "closed":
            out.append(closed(epoch, seq, topic))
            at[topic] = (epoch + 1, 1)
            continue
        out.append(b(epoch, seq, n, topic))
        ends[topic][epoch] = max(ends[topic].get(epoch, 1), seq + n)
        if kind != "late":
            at[topic] = (epoch, max(at[topic][1] if at[topic][0] == epoch else 1, seq + n))
    return out


class Driver:
    """An inbox and what a subscription's driver does with it: each arrival, then its
    recovery, answered from one fixed history; every step and unsubscribe recorded."""

    def __init__(self, groups: list[bytes], recover: bool, answer: Any) -> None:
        self.inbox = Inbox(groups, recover)
        self.answer = answer
        self.steps: list = []
        self.dropped: list[bytes] = []

    def arrive(self, item: Batch | Message) -> None:
        self.steps += run(self.inbox.arrived(item, self.dropped.append), self.answer)


@settings(max_examples=400, deadline=None)
@given(arrivals(), st.data())
def test_batches_are_recovered_exactly_as_their_messages_one_by_one(
    sent: list[Batch | Message], data: st.DataObject
) -> None:
    recover = data.draw(st.booleans(), label="recover")
    page = data.draw(st.integers(1, 4), label="page")
    lost = data.draw(st.integers(0, 4), label="lost")  # every lost-th seq is not in history
    oldest = data.draw(st.tuples(st.integers(1, 3), st.integers(1, 6)), label="oldest")
    # How far each epoch went at its owner (what history can hold of it): a new epoch's
    # fetch then finds a tail of the old one, or not, and a late batch can follow on.
    shift = data.draw(st.integers(0, 11), label="shift")
    flaky = data.draw(st.booleans(), label="flaky")

    def held(topic: str, key: Key) -> bool:
        epoch, seq = key
        if key < oldest or seq > 8 + (epoch * 7 + shift) % 12 + 4 * epoch:
            return False
        return not (lost and (seq + len(topic)) % lost == 0)

    def answer(query: HistoryQuery) -> dict | None:
        """A page of the history after ``query.after``, before ``query.until``."""
        assert query.since is None and query.until is not None  # a recovery's range
        if flaky and query.until[1] % 3 == 0:
            return None  # the owner cannot be reached for this one
        after, until = tuple(query.after), tuple(query.until)
        match = [
            (e, s)
            for e in range(after[0], until[0] + 1)
            for s in range(1, 90)
            if after < (e, s) < until and held(query.topic, (e, s))
        ]
        return {"entries": entries(*match[:page]), "more": len(match) > page}

    groups = [exact_group(topic) for topic in TOPICS]
    whole, each, split = (Driver(groups, recover, answer) for _ in range(3))
    if recover and data.draw(st.booleans(), label="replay"):
        since = data.draw(st.integers(0, 4), label="since")
        count = data.draw(st.integers(0, 3), label="count")
        replayed = entries(*[(1, s) for s in range(max(since, 1), max(since, 1) + count)])
        for driver in (whole, each, split):
            driver.inbox.replay("t", replayed, since)

    for item in sent:
        whole.arrive(item)
        split.arrive(item)
        for msg in item.messages() if type(item) is Batch else [item]:
            each.arrive(msg)
        # After every arrival: the same requests and sleeps, in the same order, the same
        # groups dropped, and the same deliveries, a batch taken whole being its messages.
        assert whole.steps == each.steps == split.steps
        assert whole.dropped == each.dropped == split.dropped
        got_whole = take_all(whole.inbox, whole=True)
        expanded = [x for d in got_whole for x in (d.messages() if type(d) is Batch else [d])]
        expected = take_all(each.inbox)
        assert expanded == expected
        assert take_all(split.inbox) == expected
        if recover:
            # A batch handed on whole is the one that just arrived, all of it.
            for d in got_whole:
                if type(d) is Batch:
                    assert d == item
        else:
            assert got_whole == ([] if type(item) is Message else [item])

    assert whole.inbox.ended == each.inbox.ended == split.inbox.ended
    assert whole.inbox.state.open_exact == each.inbox.state.open_exact
    if recover:
        assert whole.inbox.recovery is not None and each.inbox.recovery is not None
        assert whole.inbox.recovery.topics == each.inbox.recovery.topics
        assert whole.inbox.recovery.expected == each.inbox.recovery.expected
        assert split.inbox.recovery == each.inbox.recovery
