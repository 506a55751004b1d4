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
    assert lost.view() == {"by_topic": {"b": 6, "a": 3}, "other_topics": 0}


def test_beyond_the_bound_losses_are_summed_not_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(losses, "MAX_TOPICS", 2)
    lost = SubscriberLosses()
    lost.add({"a": 1, "b": 1, "c": 4})
    lost.add({"a": 1, "d": 2})
    assert lost.view() == {"by_topic": {"a": 2, "b": 1}, "other_topics": 6}
