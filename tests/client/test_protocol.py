"""The clients' shared vocabulary: ack levels, publish entries, deliveries."""

from __future__ import annotations

import pytest

from zdps.client.protocol import Message, ack_level, decode_delivery, publish_entry
from zdps.wire import ProtocolError, closed_header, message_header, pack

pytestmark = pytest.mark.timeout(10)


def test_ack_levels() -> None:
    assert [ack_level(a) for a in (True, False, "owner", "replicated", "none")] == [1, 0, 1, 2, 0]
    with pytest.raises(ValueError):
        ack_level("all")


def test_the_level_travels_only_when_it_is_not_the_default() -> None:
    assert publish_entry(3, "t", b"x", 1) == [3, "t", b"x"]
    assert publish_entry(3, "t", b"x", 2) == [3, "t", b"x", 2]


def test_deliveries_decode_to_messages() -> None:
    assert decode_delivery([b"t\x00", message_header(5, 2), b"x"]) == Message("t", 5, 2, b"x")
    closed = decode_delivery([b"t\x00", closed_header(6, 2), b""])
    assert closed == Message("t", 6, 2, b"", "closed")


@pytest.mark.parametrize(
    "frames",
    [
        [b"t\x00", message_header(1, 1)],
        [b"t", message_header(1, 1), b"x"],
        [b"t\x00", pack({"seq": 1}), b"x"],
        [b"t\x00", b"\xc1", b"x"],
    ],
)
def test_bad_deliveries_are_protocol_errors(frames: list[bytes]) -> None:
    with pytest.raises(ProtocolError):
        decode_delivery(frames)
