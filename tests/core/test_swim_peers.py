"""The peers the SWIM detector watches (zdps/core/swim_peers.py), and its next deadline.

* kept in the order they were last heard from (times never go back), the first one's
  silence and the suspicions give the earliest deadline a scan of every peer gives,
  through joins, departures, frames heard, suspicions and stalls;
  and what is due at any time is what the scan finds, without a scan;
* ``Swim.next_deadline`` is the earliest of all its timers, whatever the detector did.
"""

from __future__ import annotations

import copy
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.helpers import peer_events, verdict
from zdps.core.swim import Swim, SwimConfig
from zdps.core.swim_peers import Suspicion, WatchedPeers
from zdps.wire import ALIVE, DEAD, SUSPECT
from zdps.wire.probes import ProbeAck, ProbeReq

pytestmark = pytest.mark.timeout(60)

NODES = "bcd"
STEPS = [0.0, 0.01, 0.03, 0.1, 0.5]  # seconds between two events (0.5: a detector stall)


def scanned(peers: WatchedPeers, silence: float) -> float:
    """The earliest silence or suspicion timer, from a scan of every peer."""
    times = [peer.last_heard + silence for peer in peers.peers.values()]
    for peer in peers.peers.values():
        if peer.suspicion is not None:
            times += [peer.suspicion.deadline(), peer.suspicion.next_tell]
    return min(times)


def due_by_scan(peers: WatchedPeers, now: float, silence: float) -> tuple[set, list]:
    """The silent peers and the suspected ones with a timer due, from a scan."""
    silent = {n for n, p in peers.peers.items() if p.last_heard + silence <= now}
    timed = [n for n, p in peers.peers.items() if p.suspicion and p.suspicion.timer() <= now]
    return silent, sorted(timed)


def suspicion(now: float) -> Suspicion:
    """Told again 0.2 s later, over between 0.6 and 2.4 s later."""
    return Suspicion(now, 3, 0.6, 2.4, {"x"}, now + 0.2)


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(
        st.tuples(
            st.sampled_from(
                ["add", "remove", "heard", "suspect", "clear", "stalled", "confirm", "tell"]
            ),
            st.sampled_from(NODES),
            st.sampled_from(STEPS),
        ),
        max_size=60,
    )
)
def test_the_earliest_deadline_is_the_one_a_scan_finds(events: list) -> None:
    peers, now = WatchedPeers(), 0.0
    for kind, node, step in events:
        now += step
        if kind == "add" and node not in peers.peers:
            peers.add(node, 1, now)
        elif kind == "remove":
            watched = node in peers.peers
            assert peers.remove(node) is watched
        elif kind == "heard":
            peers.heard(node, now)  # unknown nodes are ignored
        elif kind in ("suspect", "clear") and node in peers.peers:
            peers.suspect(node, suspicion(now) if kind == "suspect" else None)
        elif kind == "stalled":
            peers.stalled(step, now)
        elif kind in ("confirm", "tell") and node in peers.peers:
            held = peers.peers[node].suspicion
            if held is not None:  # as swim.py changes a suspicion's timers, then retimes
                if kind == "confirm":
                    held.confirmations, held.confirmed_at = held.confirmations + 1, now
                else:
                    held.next_tell = now + 0.2 if step else math.inf
                peers.retime(node)
        if peers.peers:
            for silence in (0.05, 2.0):
                assert peers.earliest(silence) == scanned(peers, silence)
                for later in (0.0, 0.3, 1.0):  # what is due then: a copy, as ``due`` pops
                    silent, timed = copy.deepcopy(peers).due(now + later, silence)
                    assert (set(silent), sorted(timed)) == due_by_scan(peers, now + later, silence)


def test_time_going_back_is_a_bug() -> None:
    peers = WatchedPeers()
    peers.add("b", 1, 1.0)
    peers.heard("b", 1.0)  # the same time is fine
    with pytest.raises(AssertionError, match="time went back"):
        peers.heard("b", 0.5)


def test_a_stall_is_held_against_no_peer_and_keeps_their_order() -> None:
    peers = WatchedPeers()
    for i, node in enumerate(NODES):
        peers.add(node, 1, float(i))  # b at 0, c at 1, d at 2
    peers.suspect("c", suspicion(1.0))
    peers.stalled(1.5, 3.0)  # this node did not run for 1.5 s, until 3
    assert [p.last_heard for p in peers.peers.values()] == [1.5, 2.5, 3.0]  # never past now
    assert peers.earliest(2.0) == pytest.approx(2.7)  # c's suspicion is told again first
    peers.suspect("c", None)
    assert peers.earliest(2.0) == 3.5  # b's silence
    peers.heard("b", 3.0)
    assert peers.earliest(2.0) == 4.5  # then c's


# ---------------------------------------------------------------- the detector's deadline


def scanned_deadline(swim: Swim) -> float | None:
    """``Swim.next_deadline`` as a scan of every timer."""
    if not swim.peers:
        return None
    probe = swim._probe
    deadline = swim._next_probe if probe is None else probe.due()
    relays = [relay.deadline for relay in swim._relays.values()]
    return min([deadline, scanned(swim.watched, swim.config.silence_timeout), *relays])


EVENTS = ["add", "remove", "heard", "tick", "ack", "probe_req", SUSPECT, SUSPECT, ALIVE, DEAD]


@settings(max_examples=300, deadline=None)
@given(
    events=peer_events(EVENTS, NODES, (0, 2), STEPS, 80),  # numbers: a verdict's version
    silence=st.sampled_from([0.05, 1.0]),  # shorter than a probe: often the earliest
)
def test_the_next_deadline_is_the_earliest_timer_of_all(events: list, silence: float) -> None:
    swim = Swim("a", 1, SwimConfig(silence_timeout=silence), random.Random(0))
    now = 0.0
    for node in NODES:  # each heard from at another time
        now += 0.01
        swim.add(node, 1, now)
    for kind, node, other, version, step in events:
        now += step
        if kind == "add":
            swim.add(node, 1, now)
        elif kind == "remove":
            swim.remove(node)
        elif kind == "heard":
            swim.heard(node, now)
        elif kind == "tick":
            swim.tick(now)
        elif kind == "ack" and swim._probe is not None:
            swim.handle(swim._probe.target, ProbeAck(swim._probe.seq), now)
        elif kind == "probe_req":
            swim.handle(other, ProbeReq(version + 1, node), now)
        elif kind in (SUSPECT, ALIVE, DEAD):
            swim.handle(other, verdict(kind, node, 1, version), now)
        assert swim.next_deadline() == scanned_deadline(swim)
