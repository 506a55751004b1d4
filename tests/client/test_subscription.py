"""A subscription's inbox (zdps/client/subscription.py): recovery through its fetches,
``closed`` ending exact topics, replays before live messages, no recovery at all."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from tests.client.recovery_cases import closed, entries, gap, m
from zdps.client.recovery import (
    GAP_RECHECK,
    Delivery,
    Fetch,
)
from zdps.client.steps import Report, Request, Sleep
from zdps.client.subscription import Inbox, notices, subscriber_name
from zdps.topics import exact_group, prefix_group
from zdps.wire.api import HistoryQuery, Lost

pytestmark = pytest.mark.timeout(30)


# ---------------------------------------------------------------------- Inbox


def drain(inbox: Inbox) -> list[Delivery]:
    out = list(inbox.ready)
    inbox.ready.clear()
    return out


def finish(steps: Generator, reply: dict | None) -> list:
    """Answer every Request of a recovery with ``reply`` (Sleep needs no answer); the
    other steps it took."""
    taken = []
    try:
        step = steps.send(reply)
        while True:
            if isinstance(step, Request):
                step = steps.send(reply)
            else:
                taken.append(step)
                step = next(steps)
    except StopIteration:
        return taken


def test_inbox_recovers_through_its_fetches() -> None:
    inbox = Inbox([exact_group("t")], recover=True)
    assert inbox.live(m(1, 1)) is None
    fetch = inbox.live(m(1, 4))
    assert fetch == Fetch("t", (1, 1), (1, 4))
    steps = inbox.recovering(m(1, 4), fetch)
    assert next(steps) == Request(HistoryQuery("t", after=(1, 1), until=(1, 4)))
    taken = finish(steps, {"entries": entries((1, 3)), "more": False})
    # Asked once more before the gap is reported; then told to the node: 2 missed, 1 back.
    assert taken == [Sleep(GAP_RECHECK), Report(Lost("t", 2, 1, subscriber_name()))]
    assert drain(inbox) == [m(1, 1), gap(1, 2, 2), m(1, 3), m(1, 4)]


def test_closed_ends_an_exact_topic_and_resets_its_cursor() -> None:
    inbox = Inbox([exact_group("a"), exact_group("b")], recover=True)
    inbox.live(m(1, 1, "a"))
    inbox.live(m(1, 1, "b"))
    assert inbox.live(closed(2, 1, "a")) is None
    assert inbox.unsubscribe == notices([b"a\x00"])  # the group and its loss notices
    assert drain(inbox) == [m(1, 1, "a"), m(1, 1, "b")]  # closed itself is not delivered
    assert inbox.recovery is not None and inbox.recovery.cursor("a") is None
    assert not inbox.ended  # b is still open
    # A message of the deleted topic (still queued, or a new epoch) starts afresh.
    assert inbox.live(m(3, 5, "a")) is None
    assert drain(inbox) == [m(3, 5, "a")]
    inbox.live(m(1, 2, "b"))
    inbox.unsubscribe.clear()
    inbox.live(closed(2, 1, "b"))
    assert inbox.unsubscribe == notices([b"b\x00"])
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
