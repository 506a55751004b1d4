"""Subscriber losses per topic (zdps/core/losses.py): counted, ranked, bounded."""

from __future__ import annotations

import pytest

from zdps.core import losses
from zdps.core.losses import SubscriberLosses

pytestmark = pytest.mark.timeout(10)


def test_losses_add_up_per_topic_and_rank_the_worst_first() -> None:
    lost = SubscriberLosses()
    assert lost.add({"a": 3, "b": 1}) == 4
    assert lost.add({"b": 5}) == 5
    view = lost.view()
    assert (view["by_topic"], view["other_topics"]) == ({"b": 6, "a": 3}, 0)


def test_beyond_the_bound_losses_are_summed_not_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(losses, "MAX_TOPICS", 2)
    lost = SubscriberLosses()
    lost.add({"a": 1, "b": 1, "c": 4})
    lost.add({"a": 1, "d": 2})
    view = lost.view()
    assert (view["by_topic"], view["other_topics"]) == ({"a": 2, "b": 1}, 6)


def test_subscribers_reports_add_up_ranked_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(losses, "MAX_SUBSCRIBERS", 2)
    lost = SubscriberLosses()
    lost.reported("a", 3, 3)
    lost.reported("b", 9, 1)
    lost.reported("a", 2, 0)
    lost.reported("c", 4, 4)  # a third name: summed, not named
    view = lost.view()
    assert view["by_subscriber"] == {
        "b": {"missed": 9, "recovered": 1},
        "a": {"missed": 5, "recovered": 3},
    }
    assert view["other_subscribers"] == {"missed": 4, "recovered": 4}
