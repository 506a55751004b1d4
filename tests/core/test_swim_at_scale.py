"""The detector in large clusters and netsplits (zdps/core/swim.py, PROTOCOL.md §4.4).

A node whose probe of a peer across a split fails asks helpers; when those are across
the split too, their nacks never come, its local health rises, and it probes ever
slower, so the split took 5.5 s to be known at 100 simulated nodes (docs/SCALE.md).
And every verdict went to every peer: 200 KB/s a node while 300 nodes split.

* helpers are drawn from the peers heard from most recently (``WatchedPeers.recent``):
  in a split, those on this side;
* a helper nacks after 0.8 probe timeouts whatever its own health, so that its nack
  lands within the asker's window even when the helper is the slower one;
* a confirmation that brings a suspicion's timeout before its own arrival times it
  out then, and is no stall;
* an accusation goes to everyone only while it is among the first ``expected`` + 1,
  and only those accusers tell the target again;
* beyond VERDICT_FANOUT peers, a ``dead`` verdict goes to that many at random, and
  each node that it removes a peer at passes it on once.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.helpers import verdict
from tests.core.test_swim import (
    CFG,
    INTERVAL,
    STEP,
    TIMEOUT,
    answer_probes,
    deaths,
    make,
    run,
    told,
)
from zdps.core.swim import HELPER_POOL, VERDICT_FANOUT, Swim, Tell
from zdps.core.swim_peers import Suspicion, WatchedPeers
from zdps.wire import ALIVE, DEAD, PROBE, PROBE_NACK, PROBE_REQ, SUSPECT
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


def suspected_by_others(peers: int, accusers: int) -> tuple[Swim, str]:
    """A detector with ``peers`` peers, up at 1.0 s, one of them (the target) suspected
    by ``accusers`` others at 1.0 s."""
    swim = Swim("a", 1, CFG, random.Random(1))
    names = [f"p{i:03d}" for i in range(peers)]
    for name in names:
        swim.add(name, 1, 1.0)
    target = names[0]
    for accuser in names[1 : accusers + 1]:
        swim.handle(accuser, verdict(SUSPECT, target), 1.0)
    return swim, target


def ticks(swim: Swim, start: float, until: float) -> list:
    """Tick every STEP, every probe answered: what the detector did."""
    actions = []
    for i in range(round((until - start) / STEP) + 1):
        done = swim.tick(start + i * STEP)
        answer_probes(swim, done)
        actions += done
    return actions


def test_a_late_confirmation_times_the_suspicion_out_at_once_and_is_no_stall() -> None:
    swim, target = suspected_by_others(20, 1)  # no confirmation yet: the longest timeout
    suspicion = swim.peers[target].suspicion
    assert suspicion is not None and suspicion.deadline() > 3.5
    ticks(swim, 1.0, 3.5)
    for name in ("p002", "p003", "p004"):  # three confirmations, 2.5 s later
        swim.handle(name, verdict(SUSPECT, target), 3.5)
    assert suspicion.started + suspicion.low < 3.5 == suspicion.deadline()
    assert deaths(ticks(swim, 3.5, 3.5)) == [target]
    assert swim.counts["stalls"] == 0 and swim.health == 0


@pytest.mark.parametrize("accusers", [0, 2, 3, 4, 10])
def test_an_accusation_goes_to_everyone_only_while_it_shortens_timeouts(accusers: int) -> None:
    swim, target = suspected_by_others(20, accusers)
    actions = swim._suspect(target, "a", 1.0)  # our own probe of it failed
    suspicion = swim.peers[target].suspicion
    broadcast = suspicion.confirmations <= suspicion.expected
    assert broadcast == (accusers <= 3)
    assert len(told(actions, SUSPECT)) == (20 if broadcast else 0)
    # An accuser that told everyone tells the target again every probe interval; any
    # other holder once (below).
    again = told(ticks(swim, 1.0, 1.0 + 2 * INTERVAL), SUSPECT)
    assert [t.node for t in again] == [target] * (2 if broadcast else 1)


def test_a_holder_that_missed_the_refutation_asks_the_target_once_and_is_answered() -> None:
    """Seen with 30 real daemons: h12, accused by h15 during the cold start, refuted
    before it held h2 alive; h2, which heard h15's accusation, never heard the refutation,
    and declared h12 dead 3.3 s later. Now h2 tells h12 of the suspicion once; h12
    answers any accusation of its life with ``alive`` to everyone."""
    holder, target = suspected_by_others(20, 1)
    (tell,) = told(ticks(holder, 1.0, 1.0 + INTERVAL), SUSPECT)
    assert tell.node == target
    accused = Swim(target, 1, CFG, random.Random(2))
    accused.add("a", 1, 1.0)
    accused.version = 1  # it refuted h15's accusation already
    answer = told(accused.handle("a", tell.message, 1.2), ALIVE)
    assert [t.node for t in answer] == ["a"] and answer[0].message.ver == 1
    holder.handle(target, answer[0].message, 1.21)
    assert not holder.is_suspect(target)
    assert deaths(ticks(holder, 1.21, 6.0)) == []


@pytest.mark.parametrize("peers", [5, VERDICT_FANOUT, VERDICT_FANOUT + 2, 100])
def test_a_dead_verdict_goes_to_all_in_a_small_cluster_else_to_a_few_who_pass_it_on(
    peers: int,
) -> None:
    swim, target = suspected_by_others(peers, 3)
    actions = ticks(swim, 1.0, 6.0)
    assert deaths(actions) == [target]
    dead = told(actions, DEAD)
    others = peers - 1
    assert len(dead) == min(others, VERDICT_FANOUT)
    assert len({t.node for t in dead}) == len(dead) and target not in {t.node for t in dead}
    # The same verdict from a peer: this node had it already, and passes nothing on.
    assert swim.handle("p001", verdict(DEAD, target), 6.1) == []
    # Another node's verdict that removes a peer here is passed on, in a large cluster.
    fresh, target = suspected_by_others(peers, 0)
    actions = fresh.handle("p001", verdict(DEAD, target), 1.1)
    assert deaths(actions) == [target]
    assert len(told(actions, DEAD)) == (VERDICT_FANOUT if others > VERDICT_FANOUT else 0)
