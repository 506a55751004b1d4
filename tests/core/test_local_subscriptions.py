"""Exact local interest: any sequence of subscribes, unsubscribes and disconnects of
libzmq SUBs leaves each group counted by exactly the connections that hold it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zdps.core.local_subscriptions import LocalSubscriptions, Verdict

pytestmark = pytest.mark.timeout(60)


def test_a_duplicate_counts_once_and_a_close_drops_everything_held() -> None:
    subs = LocalSubscriptions(max_per_connection=10)
    subs.opened(7)
    assert subs.subscribe(7, b"t\x00") is Verdict.NEW
    subs.add(7, b"t\x00")
    assert subs.subscribe(7, b"t\x00") is Verdict.HELD
    assert not subs.unsubscribe(7, b"other\x00")  # never held: nothing to undo
    assert subs.closed(7) == [b"t\x00"]
    assert subs.subscribe(7, b"t\x00") is Verdict.GONE  # a report read after the close
    assert subs.connections == 0 and subs.subscriptions == 0


def test_a_reused_descriptor_starts_empty_and_the_limit_is_per_connection() -> None:
    subs = LocalSubscriptions(max_per_connection=1)
    subs.opened(5)
    subs.add(5, b"a\x00")
    assert subs.subscribe(5, b"b\x00") is Verdict.TOO_MANY
    assert subs.opened(5) == [b"a\x00"]  # the old connection's close was never seen
    assert subs.subscribe(5, b"b\x00") is Verdict.NEW


# One step of a SUB's life: (connection, action, group); what a libzmq SUB reports to
# its XPUB for it is worked out by the model below.
steps = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.sampled_from(["subscribe", "unsubscribe", "close"]),
        st.sampled_from([b"a\x00", b"b\x00", b"a", b""]),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_counts_are_the_connections_holding_each_group(script) -> None:
    subs = LocalSubscriptions(max_per_connection=100)
    counts: dict[bytes, int] = {}
    refs: dict[int, dict[bytes, int]] = {}  # the SUBs' own reference counts (libzmq's trie)

    def change(group: bytes, by: int) -> None:
        counts[group] = counts.get(group, 0) + by
        assert counts[group] >= 0

    for fd, action, group in script:
        if fd not in refs:
            refs[fd] = {}
            for left in subs.opened(fd):
                change(left, -1)
        held = refs[fd]
        if action == "subscribe":  # libzmq reports every subscribe
            held[group] = held.get(group, 0) + 1
            if subs.subscribe(fd, group) is Verdict.NEW:
                subs.add(fd, group)
                change(group, 1)
        elif action == "unsubscribe" and held.get(group):
            held[group] -= 1
            if held[group] == 0:  # ... but an unsubscribe only when the last is undone
                del held[group]
                if subs.unsubscribe(fd, group):
                    change(group, -1)
        elif action == "close":
            del refs[fd]
            for left in subs.closed(fd):
                change(left, -1)
        truth = {g: sum(g in h for h in refs.values()) for g in counts}
        assert {g: n for g, n in counts.items() if n} == {g: n for g, n in truth.items() if n}
