"""Subscriber losses per topic (zdps/core/losses.py): counted, ranked, bounded."""

from __future__ import annotations

import msgpack
import pytest

from zdps.core import losses
from zdps.core.losses import SubscriberLosses
from zdps.wire.api import Lost
from zdps.wire.errors import ProtocolError

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


def test_reported_sums_saturate_so_that_status_still_packs() -> None:
    """Found by the live fuzzer: lost reports near 2**64 made the next status reply
    fail to pack, and the node exit."""
    lost = SubscriberLosses()
    for _ in range(3):  # more than 2**64 in all
        lost.reported("x", losses.MAX_COUNT, 100)
    view = lost.view()
    assert view["by_subscriber"]["x"] == {"missed": losses.MAX_COUNT, "recovered": 300}
    assert msgpack.unpackb(msgpack.packb(view)) == view


@pytest.mark.parametrize(
    "args",
    [
        {"topic": "t", "missed": 2**32, "recovered": 0, "subscriber": "s"},
        {"topic": "t", "missed": 1, "recovered": 2, "subscriber": "s"},
        {"topic": "t", "missed": 1, "recovered": 0, "subscriber": ""},
        {"topic": "t", "missed": 1, "recovered": 0, "subscriber": "a\nb"},
    ],
)
def test_a_lost_report_out_of_bounds_is_malformed(args: dict) -> None:
    with pytest.raises(ProtocolError):
        Lost.decode(args)
