"""The local PUB: three frames per delivered message (docs/PROTOCOL.md §9.1)."""

from __future__ import annotations

from zdps.wire.codec import pack, unpack
from zdps.wire.errors import malformed

SEQ_KEY = b"\x82\xa3seq\xcf"  # map of 2; "seq": uint64
EPOCH_KEY = b"\xa5epoch\xcf"  # "epoch": uint64


def message_header(seq: int, epoch: int) -> bytes:
    """The second frame of a delivered message: msgpack ``{"seq": seq, "epoch": epoch}``.

    Built by hand (fixed-width uint64 fields, still plain msgpack) because it is made
    once per delivered message. ``seq`` and ``epoch`` were checked to fit on decoding.
    """
    return SEQ_KEY + seq.to_bytes(8, "big") + EPOCH_KEY + epoch.to_bytes(8, "big")


def closed_header(seq: int, epoch: int) -> bytes:
    """The second frame of the final control message of a deleted topic."""
    return pack({"seq": seq, "epoch": epoch, "type": "closed"})


def decode_header(frame: bytes) -> tuple[int, int, str]:
    """``(seq, epoch, type)`` of a delivery's second frame; newer keys are ignored."""
    header = unpack(frame)
    if type(header) is not dict:
        raise malformed("a delivery header is a map")
    seq, epoch, kind = header.get("seq"), header.get("epoch"), header.get("type", "message")
    if type(seq) is not int or type(epoch) is not int or type(kind) is not str:
        raise malformed("a delivery header has int seq and epoch, str type")
    return seq, epoch, kind


def topic_frame(topic: str) -> bytes:
    """The first frame: the topic's UTF-8 and NUL, so SUB prefix filters match exactly."""
    return topic.encode() + b"\x00"
