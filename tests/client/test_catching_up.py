"""Catching up after a reconnect (``Inbox.caught_up``): a SUB whose node was restarted
fetches, for each topic it delivered, what history holds after that, in order and with
gaps, instead of waiting for a later message to reveal what it missed."""

from __future__ import annotations

import pytest

from tests.client.recovery_cases import entries, gap, m
from zdps.client.recovery import FETCH_RETRY, GAP_RECHECK
from zdps.client.steps import Report, Request, Sleep
from zdps.client.subscription import Inbox, subscriber_name
from zdps.wire.api import HistoryQuery, Lost

pytestmark = pytest.mark.timeout(30)


def inbox_with(*messages) -> Inbox:
    inbox = Inbox([b"t\x00", b"u\x00"], recover=True)
    for msg in messages:
        assert inbox.live(msg) is None
    inbox.ready.clear()
    return inbox


def test_each_topic_is_fetched_after_what_it_delivered_and_losses_are_reported() -> None:
    inbox = inbox_with(m(1, 1), m(1, 2), m(1, 3), m(2, 1, "u"))
    steps = inbox.caught_up()
    assert next(steps) == Request(HistoryQuery("t", after=(1, 3)))
    # 4 and 6 are stored, 5 is not; then a new epoch (the owner restarted)
    stored = {"entries": entries((1, 4), (1, 6), (3, 1)), "more": False}
    assert steps.send(stored) == Sleep(GAP_RECHECK)  # a gap: asked once more first
    assert next(steps) == Request(HistoryQuery("t", after=(1, 3)))
    assert steps.send(stored) == Report(Lost("t", 4, 3, subscriber_name()))
    assert next(steps) == Request(HistoryQuery("u", after=(2, 1)))
    with pytest.raises(StopIteration):
        steps.send({"entries": [], "more": False})  # nothing missed: nothing reported
    assert list(inbox.ready) == [m(1, 4), gap(1, 5, 5), m(1, 6), m(3, 1)]
    assert inbox.live(m(1, 6)) is None and inbox.live(m(3, 2)) is None  # no duplicate
    assert list(inbox.ready)[-1] == m(3, 2)


def test_an_owner_that_does_not_answer_ends_the_catching_up_after_one_try() -> None:
    inbox = inbox_with(m(1, 1), m(1, 1, "u"))
    steps = inbox.caught_up()
    assert next(steps) == Request(HistoryQuery("t", after=(1, 1)))
    assert steps.send(None) == Sleep(FETCH_RETRY)  # no answer
    with pytest.raises(StopIteration):
        next(steps)  # u is not asked: the next message or notice finds what is left
    assert not inbox.ready


def test_a_subscription_that_delivered_nothing_has_nothing_to_catch_up() -> None:
    assert list(Inbox([b"t\x00"], recover=True).caught_up()) == []
