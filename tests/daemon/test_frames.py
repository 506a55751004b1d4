"""Envelopes to a peer are split under the frame and entry budgets, in order."""

from __future__ import annotations

import pytest

from zdps.daemon import node
from zdps.wire import ACK, FANOUT, FORWARD, UPDATE, decode_envelope

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


def test_many_small_forwards_and_copies_are_split_so_a_probe_never_waits_long() -> None:
    forwards = [["t", b"x", seq, 0] for seq in range(5000)]
    copies = [["t", seq, 7, b"x"] for seq in range(3000)]
    messages = [[FORWARD, forwards], [ACK, [[1, 1, 1, 1, 500]]], [FANOUT, copies]]
    frames = list(node._frames(HEADER, messages))
    received = [m for f in frames for m in decode_envelope(f)[3]]
    assert all(sum(len(b) for k, b in decode_envelope(f)[3] if k != ACK) <= 1024 for f in frames)
    assert [e for kind, body in received if kind == FORWARD for e in body] == forwards
    assert [e for kind, body in received if kind == FANOUT for e in body] == copies
    assert [kind for kind, _ in received].count(ACK) == 1
