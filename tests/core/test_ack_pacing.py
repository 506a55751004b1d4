"""Ack pacing (zdps/core/ack_pacing.py): lazy acknowledgements, one frame per
millisecond per destination at most, never more than a millisecond late."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.helpers import cluster, topic_owned_by
from zdps.core.ack_pacing import ACK_PACE, AckPacing
from zdps.core.acks import Routes
from zdps.core.outbox import Outbox
from zdps.wire import API_ACK, LEVEL_OWNER
from zdps.wire.api import publish_entry
from zdps.wire.data import Ack

pytestmark = pytest.mark.timeout(60)


def endpoint(node: str) -> str:
    return f"inproc://{node}"


def test_the_first_goes_at_once_the_next_wait_for_the_pace_together() -> None:
    pacing = AckPacing(endpoint)
    pacing.hold(b"client", 1, 1, 1, 1, 1)
    out = Outbox()
    pacing.release(0.0, out)
    assert out.clients == {b"client": [[API_ACK, [[1, 1, 1, 1, 1]]]]} and pacing.due == math.inf
    pacing.hold(b"client", 2, 2, 1, 1, 1)
    pacing.hold(b"client", 3, 3, 1, 1, 2)
    pacing.hold("b", 7, 10, 2, 3, 4)  # another destination has its own pace
    held = Outbox()
    pacing.release(0.0004, held)
    assert held.peers == {endpoint("b"): [Ack([[7, 10, 2, 3, 4]])]} and not held.clients
    assert pacing.due == pytest.approx(ACK_PACE) and len(pacing) == 2
    later = Outbox()
    pacing.release(ACK_PACE, later)
    assert later.clients == {b"client": [[API_ACK, [[2, 2, 1, 1, 3]]]]}  # one run
    assert len(pacing) == 0 and pacing.due == math.inf


def test_a_destination_that_went_away_loses_what_waited_for_it() -> None:
    pacing = AckPacing(endpoint)
    pacing.hold(b"gone", 1, 1, 1, 1, 1)
    pacing.forget(b"gone")
    out = Outbox()
    pacing.release(1.0, out)
    assert not out and len(pacing) == 0


@settings(max_examples=100, deadline=None)
@given(times=st.lists(st.floats(0, 0.01), min_size=1, max_size=40).map(sorted))
def test_every_held_ack_goes_once_at_most_a_pace_late(times: list[float]) -> None:
    """Acks held at the given times, released whenever the core ends a turn (after each
    hold) or reaches ``due``: each goes exactly once, within ACK_PACE, and frames to
    the destination are at least ACK_PACE apart."""
    pacing = AckPacing(endpoint)
    sent: list[tuple[float, list]] = []
    clock = 0.0

    def release(now: float) -> None:
        out = Outbox()
        pacing.release(now, out)
        for frame in out.clients.get(b"c", []):
            sent.append((now, frame[1]))

    for ref, at in enumerate(times, 1):
        while pacing.due <= at:
            clock = max(clock, pacing.due)
            release(clock)
        clock = at
        pacing.hold(b"c", ref, ref, 1, 1, 1)
        release(clock)
    while pacing.due < math.inf:
        clock = max(clock, pacing.due)
        release(clock)
    refs = [ref + i for _, runs in sent for ref, _, _, _, n in runs for i in range(n)]
    assert refs == list(range(1, len(times) + 1))
    when = {ref + i: at for at, runs in sent for ref, _, _, _, n in runs for i in range(n)}
    assert all(when[ref] - times[ref - 1] <= ACK_PACE + 1e-9 for ref in when)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(sent)]
    assert all(gap >= ACK_PACE - 1e-9 for gap in gaps)


def test_a_stream_through_a_hop_gets_paced_acks_and_a_single_publish_does_not() -> None:
    net = cluster("ab")
    topic = topic_owned_by("b", "ab")
    net.run_until_quiet()
    frames_before = len(net.frames("a"))
    lazy = [
        publish_entry(net.refs(1), topic, [b"%d" % i], LEVEL_OWNER, lazy=True) for i in range(5)
    ]
    for entry in lazy:  # five batches within 0.1 ms: one frame of acks to the client
        net.publish_batch("a", [entry])
        net.advance(0.00002)
    net.run_until_quiet()
    net.advance(2 * ACK_PACE)
    acks = [frame for frame in net.frames("a")[frames_before:] if frame[0] == API_ACK]
    assert sum(n for frame in acks for *_, n in frame[1]) == 5
    assert len(acks) <= 2  # the first at once, the rest together a pace later
    single = net.publish("a", topic, b"alone")  # waits on its ack: not lazy
    net.run_until_quiet()
    assert single in net.acks("a")  # without any time passing


def test_what_goes_at_once_takes_the_held_acks_for_its_destination_ahead_of_it() -> None:
    routes = Routes(endpoint)
    routes.ack(Outbox(), (b"client", 1), 1, 1, 1, 1, lazy=True)  # the first goes at once
    routes.pacing.release(0.0, Outbox())
    routes.ack(Outbox(), (b"client", 2), 2, 1, 1, 1, lazy=True)
    routes.ack(Outbox(), ("b", 7), 10, 2, 3, 4, lazy=True)
    out = Outbox()
    routes.ack(out, (b"client", 3), 3, 1, 1, 1)  # waited on: not lazy
    assert out.clients == {b"client": [[API_ACK, [[2, 2, 1, 1, 2]]]]}  # one run, in order
    refused = Outbox()
    routes.refuse(refused, ("b", 8), "timeout", "late")
    assert refused.peers[endpoint("b")][0] == Ack([[7, 10, 2, 3, 4]])  # ahead of the nack
    assert len(routes.pacing) == 0


def test_an_ack_waited_on_brings_the_paced_ones_back_through_a_hop_at_once() -> None:
    """Lazy batches, then one the publisher waits on (it fills the window, or comes
    before a FLUSH): every ack reaches the client without any time passing, although
    both hops hold lazy ones."""
    net = cluster("ab")
    topic = topic_owned_by("b", "ab")
    net.run_until_quiet()
    frames_before = len(net.frames("a"))
    for i in range(4):
        entry = publish_entry(net.refs(1), topic, [b"%d" % i], LEVEL_OWNER, lazy=i < 3)
        net.publish_batch("a", [entry])
        net.run_until_quiet()
    acks = [frame for frame in net.frames("a")[frames_before:] if frame[0] == API_ACK]
    assert sum(n for frame in acks for *_, n in frame[1]) == 4
