"""The clients' shared vocabulary: ack levels, publish entries, FLUSH, deliveries."""

from __future__ import annotations

import pytest

import zdps
from zdps.client.protocol import FLUSH, Message, ack_level, decode_delivery
from zdps.wire import ProtocolError, closed_header, decode_api, message_header, pack
from zdps.wire.api import encode_publish, publish_entry
from zdps.wire.batches import pack_batch, unpack_batch
from zdps.wire.publish_entries import PublishDecoder

pytestmark = pytest.mark.timeout(10)


def test_ack_levels() -> None:
    assert [ack_level(a) for a in (True, False, "owner", "replicated", "none")] == [1, 0, 1, 2, 0]
    with pytest.raises(ValueError):
        ack_level("all")


def test_a_publish_entry_is_a_batch_and_the_level_travels_only_when_not_the_default() -> None:
    assert publish_entry(3, "t", [b"x"], 1) == [3, "t", 1, pack_batch([b"x"])]
    assert publish_entry(3, "t", [b"x", b"y"], 2) == [3, "t", 2, pack_batch([b"x", b"y"]), 2]
    assert publish_entry(0, "t", [b"x"] * 3, 0)[:3] == [0, "t", 3]
    entry = publish_entry(7, "t", [b"a", b"", b"c"], 1)
    assert unpack_batch(entry[3], entry[2]) == [b"a", b"", b"c"]


def test_a_node_decodes_what_a_client_sends() -> None:
    entries = [
        publish_entry(3, "t", [b"x", b"y"], 1),
        publish_entry(5, "u", [b"z"], 2),
        publish_entry(6, "v", [b"w"], 1, lazy=True),
        publish_entry(0, "v", [b"w"], 1, lazy=True),  # nothing to pace without an ack
    ]
    fields = decode_api(encode_publish(entries))
    assert fields[0] == "pub"
    decoded, rejects = PublishDecoder(max_payload=16).decode(fields[1])
    assert rejects == []
    assert decoded == [
        [3, "t", 2, pack_batch([b"x", b"y"]), 1, False],
        [5, "u", 1, pack_batch([b"z"]), 2, False],
        [6, "v", 1, pack_batch([b"w"]), 1, True],
        [0, "v", 1, pack_batch([b"w"]), 1, False],
    ]


def test_flush_is_one_marker_exported_by_zdps() -> None:
    assert zdps.FLUSH is FLUSH and "FLUSH" in zdps.__all__
    assert repr(FLUSH) == "zdps.FLUSH"


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
