"""Outbox coalescing and envelopes: batches per destination, in order, under the budgets."""

from __future__ import annotations

import pytest

from zdps.core import outbox as outbox_module
from zdps.core.outbox import Outbox, envelopes
from zdps.wire import ACK, FANOUT, FORWARD, UPDATE, decode_envelope
from zdps.wire.api import API_ACK
from zdps.wire.batches import pack_batch
from zdps.wire.data import (
    LEVEL_OWNER,
    Ack,
    Closed,
    ClosedEntry,
    Consumed,
    Fanout,
    FanoutEntry,
    Forward,
    ForwardEntry,
)
from zdps.wire.gossip import Update
from zdps.wire.probes import Probe

pytestmark = pytest.mark.timeout(30)

EP = "tcp://127.0.0.1:1"
HEADER = ("default", "A", 1)


def copy(seq: int, epoch: int = 9, payload: bytes = b"x", n: int = 1) -> FanoutEntry:
    return FanoutEntry("t", seq, epoch, n, pack_batch([payload] * n))


def test_copies_and_acks_to_one_node_form_one_message_each() -> None:
    """A peer's batches are acknowledged one entry each: an ack id names one batch."""
    out = Outbox()
    for seq in (1, 3, 5):
        out.entry(EP, Fanout, copy(seq, n=2))
        out.ack(EP, 10 + seq, seq, 2, 5, 2)
    assert out.peers[EP] == [
        Fanout([copy(1, n=2), copy(3, n=2), copy(5, n=2)]),
        Ack([[11, 1, 2, 5, 2], [13, 3, 2, 5, 2], [15, 5, 2, 5, 2]]),
    ]


def test_a_clients_acks_form_one_run_across_batches() -> None:
    """A client numbers its publishes in order: batches with consecutive refs and seqs
    make one run, which breaks where refs, seqs or the reach differ."""
    out = Outbox()
    for ref, seq, nodes, n in ((1, 1, 1, 3), (4, 4, 1, 2), (7, 6, 1, 1), (8, 7, 2, 4)):
        out.client_ack(b"c", ref, seq, nodes, nodes, n)
    assert out.clients[b"c"] == [[API_ACK, [[1, 1, 1, 1, 5], [7, 6, 1, 1, 1], [8, 7, 2, 2, 4]]]]


def test_data_never_passes_a_closed_or_control_message() -> None:
    out = Outbox()
    out.entry(EP, Fanout, copy(1, 9, b"a"))
    out.entry(EP, Closed, ClosedEntry("t", 2, 9))
    out.entry(EP, Fanout, copy(1, 10, b"b"))
    out.update(EP, Update({b"g\x00": 1}))
    out.send(EP, Consumed(3))
    out.entry(EP, Fanout, copy(2, 10, b"c"))
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
    out.entry(EP, Fanout, copy(1))
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
    assert decode_envelope(frames[0])[3] == [
        [UPDATE, {b"t\x00": 1}],
        [FANOUT, [["t", 1, 9, 1, pack_batch([b"x"])]]],
    ]


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


def test_many_messages_are_split_so_a_probe_never_waits_long() -> None:
    """An envelope carries at most FRAME_MESSAGES messages, counted inside batches."""
    blob = pack_batch([b"x"] * 10)
    forwards = [ForwardEntry("t", 10, blob, seq, 0, LEVEL_OWNER) for seq in range(5000)]
    copies = [copy(seq, 7, n=3) for seq in range(3000)]
    messages = [Forward(forwards), Ack([[1, 1, 1, 1, 500]]), Fanout(copies)]
    frames = list(envelopes(HEADER, messages))
    received = [m for f in frames for m in decode_envelope(f)[3]]
    for frame in frames:
        bodies = [b for k, b in decode_envelope(frame)[3] if k != ACK]
        carried = sum(e[1] if len(e) >= 6 else e[3] for b in bodies for e in b)  # fwd, fanout
        assert carried <= outbox_module.FRAME_MESSAGES
    assert len(frames) > (50_000 + 9000) // outbox_module.FRAME_MESSAGES
    assert [e for kind, body in received if kind == FORWARD for e in body] == [
        list(e) for e in forwards
    ]
    assert [e for kind, body in received if kind == FANOUT for e in body] == [
        list(e) for e in copies
    ]
    assert [kind for kind, _ in received].count(ACK) == 1
