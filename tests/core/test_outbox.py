"""Outbox coalescing: batches per destination without reordering what needs order."""

from __future__ import annotations

import pytest

from zdps.core.outbox import Outbox
from zdps.wire import ACK, CLOSED, CONSUMED, FANOUT, PROBE, UPDATE

pytestmark = pytest.mark.timeout(10)

EP = "tcp://127.0.0.1:1"


def test_copies_and_acks_to_one_node_form_one_batch_each() -> None:
    out = Outbox()
    for seq in (1, 2, 3):
        out.batch(EP, FANOUT, ["t", seq, 9, b"x"])
        out.ack(EP, ACK, 10 + seq, seq, 2, 5)
    assert out.peers[EP] == [
        [FANOUT, [["t", 1, 9, b"x"], ["t", 2, 9, b"x"], ["t", 3, 9, b"x"]]],
        [ACK, [[11, 1, 2, 5, 3]]],
    ]


def test_a_run_breaks_where_refs_seqs_or_reach_differ() -> None:
    out = Outbox()
    for ref, seq, nodes in ((1, 1, 1), (2, 2, 1), (4, 3, 1), (5, 4, 2)):
        out.ack(EP, ACK, ref, seq, nodes, nodes)
    assert out.peers[EP] == [[ACK, [[1, 1, 1, 1, 2], [4, 3, 1, 1, 1], [5, 4, 2, 2, 1]]]]


def test_data_never_passes_a_closed_or_control_message() -> None:
    out = Outbox()
    out.batch(EP, FANOUT, ["t", 1, 9, b"a"])
    out.batch(EP, CLOSED, ["t", 2, 9])
    out.batch(EP, FANOUT, ["t", 1, 10, b"b"])
    out.merge(EP, [UPDATE, {b"g\x00": 1}])
    out.send(EP, [CONSUMED, 3])
    out.batch(EP, FANOUT, ["t", 2, 10, b"c"])
    kinds = [message[0] for message in out.peers[EP]]
    # The last copy may pass the confirmation, but not the membership update.
    assert kinds == [FANOUT, CLOSED, FANOUT, UPDATE, CONSUMED, FANOUT]
    assert out.peers[EP][0] == [FANOUT, [["t", 1, 9, b"a"]]]
    assert out.peers[EP][2] == [FANOUT, [["t", 1, 10, b"b"]]]


def test_probe_channel_messages_are_kept_apart_and_dropped_with_the_link() -> None:
    out = Outbox()
    out.batch(EP, FANOUT, ["t", 1, 9, b"x"])
    out.probe(EP, [PROBE, {"seq": 1}])
    assert out.peers[EP] == [[FANOUT, [["t", 1, 9, b"x"]]]]  # data untouched
    assert out.take_urgent() == {EP: [[PROBE, {"seq": 1}]]}
    assert out.urgent == {} and out  # taken once; the data is still there
    out.probe(EP, [PROBE, {"seq": 2}])
    out.disconnect(EP)
    assert out.urgent == {} and out.peers == {}
