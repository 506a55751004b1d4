"""The sans-IO side of the clients: frame parsing and the publish-stream ledger."""

from __future__ import annotations

import pytest

from zdps.client.protocol import ClientProtocol, PublishError, PublishResult, StreamLedger
from zdps.wire import ProtocolError, encode_api, pack

pytestmark = pytest.mark.timeout(10)


def stream(*frames: tuple[int, int, float]) -> StreamLedger:
    ledger = StreamLedger()
    for first, count, deadline in frames:
        ledger.add(first, count, deadline)
    return ledger


def test_acks_settle_across_frames_and_late_ones_are_dropped() -> None:
    ledger = stream((10, 4, 1.0), (14, 4, 2.0), (18, 2, 3.0))
    ledger.settle(12, 4)  # the end of one frame, the start of the next
    assert (ledger.acked, ledger.unsettled) == (4, 6)
    assert ledger.expire(1.5, "late") == [1.0]  # 10 and 11 were never acked
    assert [f.code for f in ledger.failures] == ["timeout", "timeout"]
    ledger.settle(10, 2)  # too late: neither acked nor failed twice
    assert (ledger.acked, len(ledger.failures), ledger.unsettled) == (4, 2, 4)
    ledger.settle(16, 1, PublishError("too_large", "no"))
    ledger.settle(17, 3)
    assert (ledger.acked, len(ledger.failures), ledger.unsettled) == (7, 3, 0)
    assert ledger.oldest_deadline() is None and ledger.expire(10.0, "late") == []


def test_parse_stream_passes_on_what_is_not_the_streams() -> None:
    proto, ledger = ClientProtocol(), stream((5, 3, 1.0))
    frame = encode_api("ack", [[3, 100, 1, 1, 4], [8, 7, 1, 1, 1]])  # refs 3..6, and 8
    outcomes, events = proto.parse_stream(frame, ledger)
    assert outcomes == [
        (3, PublishResult(100, 1, 1)),
        (4, PublishResult(101, 1, 1)),
        (8, PublishResult(7, 1, 1)),
    ]
    assert (ledger.acked, ledger.unsettled, events) == (2, 1, [])
    outcomes, _ = proto.parse_stream(
        encode_api("nack", [[7, "no_route", "x"], [9, "a", "b"]]), ledger
    )
    assert [ref for ref, _ in outcomes] == [9] and ledger.failures[0].code == "no_route"


@pytest.mark.parametrize(
    "frame",
    [b"\xc1", pack([1, "rep", 5]), pack([1, "ack", [[1, 2]]]), pack([1, "rep", 1, False, {}])],
)
def test_frames_of_the_wrong_shape_are_protocol_errors(frame: bytes) -> None:
    with pytest.raises(ProtocolError):
        ClientProtocol().parse(frame)
    with pytest.raises(ProtocolError):
        ClientProtocol().parse_stream(frame, StreamLedger())
