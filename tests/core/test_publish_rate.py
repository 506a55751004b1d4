"""max_publish_rate (zdps/core/publish_rate.py, docs/PROTOCOL.md §10): a client over its
rate gets ``rate_limited`` and is counted; others are not held back; the long-run rate
holds whatever the batch sizes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zdps.core import publish_rate
from zdps.core.node import NodeCore
from zdps.core.publish_rate import PublishRate
from zdps.core.tunables import CoreConfig
from zdps.wire.api import encode_publish, publish_entry

pytestmark = pytest.mark.timeout(60)


def test_a_client_over_its_rate_is_refused_and_counted_others_are_not() -> None:
    core = NodeCore(
        "a", 1, "default", "tcp://127.0.0.1:1", [], 0.0, CoreConfig(max_publish_rate=10)
    )
    for ref in range(1, 4):  # 6 + 6 > 10: the second and third are over the rate
        core.on_client_frame(b"X", encode_publish([publish_entry(ref, "t", [b"m"] * 6, 1)]), 1.0)
    core.on_client_frame(b"Y", encode_publish([publish_entry(9, "t", [b"m"] * 6, 1)]), 1.0)
    core.on_client_frame(b"X", encode_publish([publish_entry(4, "t", [b"m"] * 6, 1)]), 2.0)
    answers = core.take(2.0).clients
    x = {
        (kind, entry[0], entry[1] if kind == "nack" else "")
        for kind, entries in answers[b"X"]
        for entry in entries
    }
    assert x == {
        ("ack", 1, ""),
        ("nack", 2, "rate_limited"),
        ("nack", 3, "rate_limited"),
        ("ack", 4, ""),
    }
    assert answers[b"Y"][0][0] == "ack"
    assert core.errors["rate_limited"] == 2 and core.counters["published"] == 18


@given(st.lists(st.tuples(st.integers(1, 50), st.floats(0, 0.5)), min_size=1, max_size=200))
def test_the_long_run_rate_holds_whatever_the_batches(sends) -> None:
    rate, now, taken = PublishRate(20), 0.0, 0
    for n, wait in sends:
        now += wait
        taken += n if rate.take(b"c", n, now) else 0
    assert taken <= 20 * (1 + now) + 50  # a second's burst, one batch owed, and the rate


def test_the_buckets_stay_bounded_under_client_churn(monkeypatch) -> None:
    monkeypatch.setattr(publish_rate, "MAX_CLIENTS", 3)
    rate = PublishRate(10)
    for client in range(10):  # none idle long enough: the oldest goes
        assert rate.take(b"%d" % client, 1, 1.0)
    assert len(rate._buckets) <= 3
