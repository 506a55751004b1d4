"""Indirect probes in a netsplit (zdps/core/swim.py, docs/PROTOCOL.md §4.4).

A node whose probe of a peer across a split fails asks helpers; when those are across
the split too, their nacks never come, its local health rises, and it probes ever
slower, so the split took 5.5 s to be known at 100 simulated nodes (docs/SCALE.md).

* helpers are drawn from the peers heard from most recently (``WatchedPeers.recent``):
  in a split, those on this side;
* a helper nacks after 0.8 probe timeouts whatever its own health, so that its nack
  lands within the asker's window even when the helper is the slower one.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.test_swim import CFG, INTERVAL, STEP, TIMEOUT, make, run, told
from zdps.core.swim import HELPER_POOL, Swim, Tell
from zdps.core.swim_peers import Suspicion, WatchedPeers
from zdps.wire import PROBE, PROBE_NACK, PROBE_REQ
from zdps.wire.probes import ProbeNack, ProbeReq

pytestmark = pytest.mark.timeout(60)


@given(
    heard=st.lists(st.integers(0, 29), min_size=1, max_size=60),
    suspects=st.sets(st.integers(0, 29), max_size=10),
    count=st.integers(1, 12),
)
def test_recent_peers_are_the_most_recently_heard_unsuspected_ones(
    heard: list[int], suspects: set[int], count: int
) -> None:
    watched = WatchedPeers()
    for i in range(30):
        watched.add(f"p{i}", 1, 0.0)
    for t, i in enumerate(heard, start=1):
        watched.heard(f"p{i}", float(t))
    for i in suspects:
        watched.suspect(f"p{i}", Suspicion(0.0, 3, 1.0, 4.0, {"x"}, 0.0))
    recent = watched.recent(count, other_than="p0")
    eligible = [n for n in watched.peers if n != "p0" and int(n[1:]) not in suspects]
    by_recency = sorted(eligible, key=lambda n: -watched.peers[n].last_heard)
    assert len(recent) == min(count, len(eligible))
    assert [watched.peers[n].last_heard for n in recent] == [
        watched.peers[n].last_heard for n in by_recency[: len(recent)]
    ]


def split_detector(seed: int) -> Swim:
    """Forty peers come up at 0.9 s; twenty are heard from again (this side), twenty
    are silent since (the other side of a split)."""
    swim = Swim("a", 1, CFG, random.Random(seed))
    for i in range(40):
        swim.add(f"p{i:02d}", 1, 0.9)
    for i in range(20):
        swim.heard(f"p{i:02d}", 1.0 + i * 0.001)
    return swim


@pytest.mark.parametrize("seed", range(20))
def test_helpers_are_asked_among_the_peers_heard_from_last(seed: int) -> None:
    swim = split_detector(seed)
    start = 0.9 + INTERVAL  # the first probe
    (probe,) = swim.tick(start)
    asks = told(run(swim, start + STEP, start + TIMEOUT), PROBE_REQ)
    assert len(asks) == 3 and probe.node not in {a.node for a in asks}
    recent = {f"p{i:02d}" for i in range(20 - HELPER_POOL * 3 - 1, 20)}
    assert {a.node for a in asks} <= recent  # none across the split


def test_a_helper_in_poor_health_still_nacks_within_the_askers_window() -> None:
    helper = make("h", peers="at")
    helper.health = 5  # its own probes are stretched 6 times; its nacks are not
    assert [t.message.KIND for t in helper.handle("a", ProbeReq(42, "t"), 0.0)] == [PROBE]
    nack_at = 0.8 * TIMEOUT
    assert told(run(helper, 0.0, nack_at - STEP), PROBE_NACK) == []
    assert told(helper.tick(nack_at), PROBE_NACK) == [Tell("a", ProbeNack(42))]
    assert nack_at < INTERVAL  # before the asker's probe ends (its health 0)
