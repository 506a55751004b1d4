"""Envelopes to a peer are split under the frame budget, keeping every message in order."""

from __future__ import annotations

import pytest

from zdps.daemon import node
from zdps.wire import FANOUT, UPDATE, decode_envelope

pytestmark = pytest.mark.timeout(30)

HEADER = ("default", "A", 1)


def test_small_batches_stay_one_frame() -> None:
    messages = [[UPDATE, {b"t\x00": 1}], [FANOUT, [["t", 1, 1, b"x"]]]]
    frames = list(node._frames(HEADER, messages))
    assert len(frames) == 1
    assert decode_envelope(frames[0])[3] == messages


def test_a_burst_of_large_payloads_is_split_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node, "FRAME_BUDGET", 10_000)
    entries = [["t", seq, 7, bytes([seq % 256]) * 1000] for seq in range(1, 101)]
    messages = [[UPDATE, {b"a\x00": 1}], [FANOUT, entries], [UPDATE, {b"b\x00": 2}]]
    frames = list(node._frames(HEADER, messages))
    assert len(frames) > 10
    assert all(len(f) <= 10_000 for f in frames)
    received = [m for f in frames for m in decode_envelope(f)[3]]
    flat = [e for kind, body in received if kind == FANOUT for e in body]
    assert flat == entries
    kinds = [kind for kind, _ in received]
    assert kinds[0] == UPDATE and kinds[-1] == UPDATE and set(kinds[1:-1]) == {FANOUT}
