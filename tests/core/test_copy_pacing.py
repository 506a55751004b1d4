"""Copy pacing (zdps/core/copy_pacing.py): copies nobody waits on, to a replica that
delivers to nobody, go with the next frame to that replica, at most a pace late, and
never out of order."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zdps.core.copy_pacing import COPY_PACE, CopyPacing
from zdps.core.outbox import Outbox
from zdps.wire.data import Fanout, Store

pytestmark = pytest.mark.timeout(60)

B = "inproc://b"


def copy(seq: int) -> tuple:
    return ("t", seq, 1, 1, b"\x91\xc4\x01x", False)


def fanout(seq: int) -> tuple:
    return ("u", seq, 1, 1, b"\x91\xc4\x01x")


def released(pacing: CopyPacing, now: float, *seqs: int) -> Outbox:
    """A turn's outbox with lazy copies of ``seqs``, after ``pacing`` settled it."""
    out = Outbox()
    for seq in seqs:
        out.lazy_entry(B, Store, copy(seq))
    pacing.release(now, out)
    return out


def test_the_first_goes_at_once_the_next_wait_for_the_pace_together() -> None:
    pacing = CopyPacing()
    out = Outbox()
    out.lazy_entry(B, Store, copy(1))
    assert out.peers == {} and out  # held by the outbox until the turn ends
    pacing.release(0.0, out)
    assert out.peers == {B: [Store([copy(1)])]} and pacing.due == math.inf
    held = Outbox()
    held.lazy_entry(B, Store, copy(2))
    held.lazy_entry(B, Store, copy(3))
    pacing.release(0.0004, held)
    assert held.peers == {} and len(pacing) == 1 and pacing.due == pytest.approx(COPY_PACE)
    later = Outbox()
    pacing.release(COPY_PACE, later)
    assert later.peers == {B: [Store([copy(2), copy(3)])]} and len(pacing) == 0
    assert pacing.due == math.inf


def test_a_copy_joins_a_frame_that_goes_anyway_and_held_ones_go_before_it() -> None:
    pacing = CopyPacing()
    released(pacing, 0.0, 1)
    released(pacing, 0.0001, 2)  # held: a frame went to b just now
    turn = Outbox()
    turn.lazy_entry(B, Store, copy(3))  # queued before anything else for b this turn
    turn.entry(B, Fanout, fanout(5))
    turn.lazy_entry(B, Store, copy(4))  # b gets a frame this turn: joins it
    pacing.release(0.0002, turn)
    assert turn.peers == {B: [Store([copy(2), copy(3)]), Fanout([fanout(5)]), Store([copy(4)])]}
    assert len(pacing) == 0


def test_a_disconnected_peer_loses_what_was_held_for_it() -> None:
    pacing = CopyPacing()
    out = Outbox()
    out.entry(B, Fanout, fanout(1))
    pacing.release(0.0, out)
    released(pacing, 0.0001, 1)
    assert len(pacing) == 1
    gone = Outbox()
    gone.disconnect(B)
    pacing.release(0.0002, gone)
    assert len(pacing) == 0 and gone.peers == {} and pacing.due == math.inf


@settings(max_examples=100, deadline=None)
@given(
    turns=st.lists(
        st.tuples(st.floats(0, 0.0005), st.lists(st.booleans(), max_size=4)),
        min_size=1,
        max_size=40,
    )
)
def test_every_copy_goes_once_in_order_at_most_a_pace_late(
    turns: list[tuple[float, list[bool]]],
) -> None:
    """Turns at increasing times, each queueing lazy copies (True) and fan-out entries
    (False) to b, and a turn whenever ``due`` comes: everything reaches b exactly once,
    in the order queued; a copy at most COPY_PACE after it was queued; and frames that
    carry only copies are at least COPY_PACE apart."""
    pacing, now, seq = CopyPacing(), 0.0, 0
    queued_at: dict[int, float] = {}
    received: list[int] = []
    last_frame = -math.inf

    def turn(at: float, kinds: list[bool]) -> None:
        nonlocal seq, last_frame
        out = Outbox()
        for lazy in kinds:
            seq += 1
            queued_at[seq] = at
            if lazy:
                out.lazy_entry(B, Store, copy(seq))
            else:
                out.entry(B, Fanout, fanout(seq))
        pacing.release(at, out)
        frame = out.peers.get(B, [])
        if frame and not any(type(m) is Fanout for m in frame):
            assert at - last_frame >= COPY_PACE - 1e-12
        if frame:
            last_frame = at
        for message in frame:
            for entry in message.entries:
                received.append(entry[1])
                if type(message) is Store:
                    assert at - queued_at[entry[1]] <= COPY_PACE + 1e-12

    for gap, kinds in turns:
        while pacing.due <= now + gap:
            turn(max(now, pacing.due), [])
            now = max(now, pacing.due) if pacing.due != math.inf else now
        now += gap
        turn(now, kinds)
    while pacing.due != math.inf:
        now = pacing.due
        turn(now, [])
    assert received == list(range(1, seq + 1))
