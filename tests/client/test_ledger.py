"""The publish stream's ledger: acks settle whole frames, late ones are not counted."""

from __future__ import annotations

import pytest

from zdps.client.ledger import StreamLedger
from zdps.client.protocol import PublishError

pytestmark = pytest.mark.timeout(10)


def stream(*frames: tuple[int, int, float]) -> StreamLedger:
    ledger = StreamLedger()
    for first, count, deadline in frames:
        ledger.add(first, count, deadline)
    return ledger


def test_acks_settle_across_frames_and_late_ones_are_dropped() -> None:
    ledger = stream((10, 4, 1.0), (14, 4, 2.0), (18, 2, 3.0))
    assert ledger.settle(12, 4) == 4  # the end of one frame, the start of the next
    assert (ledger.acked, ledger.unsettled) == (4, 6)
    assert ledger.expire(1.5, "late") == [1.0]  # 10 and 11 were never acked
    assert [f.code for f in ledger.failures] == ["timeout", "timeout"]
    assert ledger.settle(10, 2) == 0  # too late: neither acked nor failed twice
    assert (ledger.acked, len(ledger.failures), ledger.unsettled) == (4, 2, 4)
    assert ledger.settle(16, 1, PublishError("too_large", "no")) == 1
    assert ledger.settle(17, 3) == 3
    assert (ledger.acked, len(ledger.failures), ledger.unsettled) == (7, 3, 0)
    assert ledger.oldest_deadline() is None and ledger.expire(10.0, "late") == []


def test_a_run_over_other_refs_settles_only_the_stream_s_frames() -> None:
    ledger = stream((10, 2, 1.0), (20, 2, 1.0))  # refs 12..19 are someone else's
    assert ledger.settle(8, 14) == 4
    assert (ledger.acked, ledger.unsettled) == (4, 0)
    assert ledger.settle(12, 3) == 0
