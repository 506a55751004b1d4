"""Loss notices in the clients (docs/PROTOCOL.md §9.6): a notice past what a subscriber
delivered fetches the rest from history, up to and with the notice's seq, and reports
what history no longer has; a notice is never delivered itself."""

from __future__ import annotations

import pytest

from tests.client.recovery_cases import entries, gap, m, started
from zdps.client.protocol import LOST, LOST_TOPIC, Message, decode_batch_delivery, decode_delivery
from zdps.client.recovery import GAP_RECHECK, Fetch, Recovery
from zdps.client.steps import Report, Request, Sleep
from zdps.client.subscription import Inbox, subscriber_name
from zdps.topics import LOST_PREFIX
from zdps.wire.api import MAX_SUBSCRIBER_NAME, Lost
from zdps.wire.delivery import lost_header

pytestmark = pytest.mark.timeout(30)


def notice(epoch: int, seq: int, topic: str = "t") -> Message:
    return Message(topic, seq, epoch, b"", LOST)


def test_a_notice_past_the_cursor_fetches_the_lost_tail() -> None:
    recovery = started((1, 1), (1, 2))
    fetch = recovery.live(notice(1, 5))
    assert fetch == Fetch("t", (1, 2), (1, 6))
    got = recovery.recovered(notice(1, 5), entries((1, 3), (1, 5)))
    assert got == [m(1, 3), gap(1, 4, 4), m(1, 5)]
    assert recovery.cursor("t") == (1, 5)
    assert recovery.live(m(1, 6)) == [m(1, 6)]  # and on live from there


def test_a_notice_of_what_was_delivered_or_of_an_unknown_topic_does_nothing() -> None:
    recovery = started((1, 1), (1, 2))
    assert recovery.live(notice(1, 2)) == []
    assert recovery.live(notice(1, 1)) == []
    assert Recovery().live(notice(1, 9)) == []  # nothing arrived yet: no telling


def test_a_notice_of_a_later_epoch_fetches_from_the_oldest_known_position() -> None:
    recovery = started((1, 1))
    assert recovery.live(notice(2, 3)) == Fetch("t", (1, 1), (2, 4))


def test_notices_are_decoded_with_their_topic_and_subscribed_with_recovery_only() -> None:
    frames = [LOST_PREFIX + b"news\x00", lost_header(7, 3), b""]
    assert decode_delivery(frames) == Message("news", 7, 3, b"", LOST)
    assert decode_batch_delivery(frames) == Message("news", 7, 3, b"", LOST)
    assert (LOST_PREFIX + b"news").decode() == LOST_TOPIC + "news"
    assert Inbox([b"news\x00"], recover=True).subscriptions() == [
        b"news\x00",
        LOST_PREFIX + b"news\x00",
    ]
    plain = Inbox([b"news\x00"], recover=False)
    assert plain.subscriptions() == [b"news\x00"]
    assert plain.live(notice(3, 7, "news")) is None and not plain.ready


def test_a_recovery_reports_what_was_missed_and_recovered_to_the_node() -> None:
    inbox = Inbox([b"t\x00"], recover=True)
    inbox.live(m(1, 1))
    fetch = inbox.live(notice(1, 5))
    assert isinstance(fetch, Fetch)
    steps = inbox.recovering(notice(1, 5), fetch)
    assert isinstance(next(steps), Request)  # the history query
    report = steps.send({"entries": entries((1, 2), (1, 3)), "more": False})
    assert report == Sleep(GAP_RECHECK)  # 4 and 5 are not in history: asked once more
    next(steps)
    report = steps.send({"entries": entries((1, 2), (1, 3)), "more": False})
    assert report == Report(Lost("t", 4, 2, subscriber_name()))  # 4 missed, 2 recovered
    with pytest.raises(StopIteration):
        next(steps)  # nobody waits for the node's answer (an old node: unknown_op)
    assert list(inbox.ready) == [m(1, 1), m(1, 2), m(1, 3), gap(1, 4, 5)]
    assert 0 < len(subscriber_name()) <= MAX_SUBSCRIBER_NAME
