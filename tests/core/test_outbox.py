"""Outbox coalescing and envelopes: batches per destination, in order, under the budgets."""

from __future__ import annotations

import pytest

from zdps.core import outbox as outbox_module
from zdps.core.outbox import Outbox, envelopes
from zdps.wire import ACK, FANOUT, FORWARD, UPDATE, decode_envelope
from zdps.wire.data import (
    LEVEL_OWNER,
    Ack,
    Closed,
    ClosedEntry,
    Consumed,
    Fanout,
    FanoutEntry,
    Forward,
    forward_entry,
)
from zdps.wire.gossip import Update
from zdps.wire.probes import Probe

pytestmark = pytest.mark.timeout(30)

EP = "tcp://127.0.0.1:1"
HEADER = ("default", "A", 1)


def copy(seq: int, epoch: int = 9, payload: bytes = b"x") -> FanoutEntry:
    return FanoutEntry("t", seq, epoch, payload)


def test_copies_and_acks_to_one_node_form_one_batch_each() -> None:
    out = Outbox()
    for seq in (1, 2, 3):
        out.batch(EP, Fanout, copy(seq))
        out.ack(EP, 10 + seq, seq, 2, 5)
    assert out.peers[EP] == [Fanout([copy(1), copy(2), copy(3)]), Ack([[11, 1, 2, 5, 3]])]


def test_a_run_breaks_where_refs_seqs_or_reach_differ() -> None:
    out = Outbox()
    for ref, seq, nodes in ((1, 1, 1), (2, 2, 1), (4, 3, 1), (5, 4, 2)):
        out.ack(EP, ref, seq, nodes, nodes)
    assert out.peers[EP] == [Ack([[1, 1, 1, 1, 2], [4, 3, 1, 1, 1], [5, 4, 2, 2, 1]])]


def test_data_never_passes_a_closed_or_control_message() -> None:
    out = Outbox()
    out.batch(EP, Fanout, copy(1, 9, b"a"))
    out.batch(EP, Closed, ClosedEntry("t", 2, 9))
    out.batch(EP, Fanout, copy(1, 10, b"b"))
    out.update(EP, Update({b"g\x00": 1}))
    out.send(EP, Consumed(3))
    out.batch(EP, Fanout, copy(2, 10, b"c"))
    kinds = [type(message) for message in out.peers[EP]]
    # The last copy may pass the confirmation, but not the membership update.
    assert kinds == [Fanout, Closed, Fanout, Update, Consumed, Fanout]
    assert out.peers[EP][0] == Fanout([copy(1, 9, b"a")])
    assert out.peers[EP][2] == Fanout([copy(1, 10, b"b")])


def test_updates_merge_into_the_one_queued_last() -> None:
    out = Outbox()
    first = Update({b"a\x00": 1})
    out.update(EP, first)
    out.update(EP, Update({b"b\x00": 2, b"a\x00": 0}))
    assert out.peers[EP] == [Update({b"a\x00": 0, b"b\x00": 2})]
    assert first.counts == {b"a\x00": 1}  # what the overlay handed over is not changed


def test_probe_link_messages_are_kept_apart_and_dropped_with_the_link() -> None:
    out = Outbox()
    out.batch(EP, Fanout, copy(1))
    out.probe(EP, Probe(1))
    assert out.peers[EP] == [Fanout([copy(1)])]  # data untouched
    assert out.take_probes() == {EP: [Probe(1)]}
    assert out.probes == {} and out  # taken once; the data is still there
    out.probe(EP, Probe(2))
    out.disconnect(EP)
    assert out.probes == {} and out.peers == {}


def test_small_batches_stay_one_frame() -> None:
    messages = [Update({b"t\x00": 1}), Fanout([copy(1)])]
    frames = list(envelopes(HEADER, messages))
    assert len(frames) == 1
    assert decode_envelope(frames[0])[3] == [[UPDATE, {b"t\x00": 1}], [FANOUT, [["t", 1, 9, b"x"]]]]


def test_a_burst_of_large_payloads_is_split_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_module, "FRAME_BUDGET", 10_000)
    entries = [copy(seq, 7, bytes([seq % 256]) * 1000) for seq in range(1, 101)]
    messages = [Update({b"a\x00": 1}), Fanout(entries), Update({b"b\x00": 2})]
    frames = list(envelopes(HEADER, messages))
    assert len(frames) > 10
    assert all(len(f) <= 10_000 for f in frames)
    received = [m for f in frames for m in decode_envelope(f)[3]]
    flat = [e for kind, body in received if kind == FANOUT for e in body]
    assert flat == [list(e) for e in entries]
    kinds = [kind for kind, _ in received]
    assert kinds[0] == UPDATE and kinds[-1] == UPDATE and set(kinds[1:-1]) == {FANOUT}


def test_many_small_forwards_and_copies_are_split_so_a_probe_never_waits_long() -> None:
    forwards = [forward_entry("t", b"x", seq, 0, LEVEL_OWNER) for seq in range(5000)]
    copies = [copy(seq, 7) for seq in range(3000)]
    messages = [Forward(forwards), Ack([[1, 1, 1, 1, 500]]), Fanout(copies)]
    frames = list(envelopes(HEADER, messages))
    received = [m for f in frames for m in decode_envelope(f)[3]]
    assert all(sum(len(b) for k, b in decode_envelope(f)[3] if k != ACK) <= 1024 for f in frames)
    # The default ack level is left out of a fwd entry on the wire.
    assert [e for kind, body in received if kind == FORWARD for e in body] == [
        ["t", b"x", seq, 0] for seq in range(5000)
    ]
    assert [e for kind, body in received if kind == FANOUT for e in body] == [
        list(e) for e in copies
    ]
    assert [kind for kind, _ in received].count(ACK) == 1
