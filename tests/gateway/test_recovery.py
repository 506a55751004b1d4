"""A rejoining socket's recovery (zdps/gateway/recovery.py): each message once, in
order, a gap where an epoch skips seqs, then the live messages buffered meanwhile."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zdps.client.recovery import Gap
from zdps.gateway.recovery import Recovery

pytestmark = pytest.mark.timeout(30)


def test_history_then_buffered_each_once_with_gaps() -> None:
    recovery = Recovery("t", (2, 2))
    recovery.buffered += [(2, 9, b"9"), (2, 8, b"8"), (3, 1, b"a")]
    assert recovery.take([(2, 2, b"old"), (2, 6, b"6"), (2, 7, b"7"), (2, 8, b"8")]) == [
        Gap("t", 2, 3, 5), (2, 6, b"6"), (2, 7, b"7"), (2, 8, b"8"),
    ]  # fmt: skip
    assert recovery.finish() == [(2, 9, b"9"), (3, 1, b"a")]  # a new epoch is no gap
    assert recovery.buffered == [] and recovery.last == (3, 1)


@given(
    st.lists(st.tuples(st.integers(1, 3), st.integers(1, 30)), max_size=40),
    st.lists(st.tuples(st.integers(1, 3), st.integers(1, 30)), max_size=20),
)
def test_what_is_sent_is_ordered_unique_and_after_the_position(history, live) -> None:
    recovery = Recovery("t", (1, 5))
    recovery.buffered += [(e, s, b"") for e, s in live]
    sent = recovery.take([(e, s, b"") for e, s in sorted(history)]) + recovery.finish()
    positions = [item[:2] for item in sent if not isinstance(item, Gap)]
    assert positions == sorted(set(positions)) and all(p > (1, 5) for p in positions)
    covered = set(positions) | {
        (gap.epoch, seq) for gap in sent if isinstance(gap, Gap)
        for seq in range(gap.first, gap.last + 1)
    }  # fmt: skip
    for epoch, seq in positions:  # no seq of an epoch is skipped silently after the first
        low = 6 if epoch == 1 else min(s for e, s in positions if e == epoch)
        assert all((epoch, s) in covered for s in range(low, seq))
