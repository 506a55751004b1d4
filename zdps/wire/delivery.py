"""The local PUBs: three frames per delivered message (docs/PROTOCOL.md §9.1), and three
frames per delivered batch on the batch PUB (§9.5)."""

from __future__ import annotations

from zdps.wire.batches import MAX_BATCH
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


def lost_header(seq: int, epoch: int) -> bytes:
    """The second frame of a loss notice (§9.6): the topic's last delivered position."""
    return pack({"seq": seq, "epoch": epoch, "type": "lost"})


def batch_header(seq: int, epoch: int, n: int) -> bytes:
    """The second frame of a batch on the batch PUB: ``{"seq", "epoch", "n"}``, for the
    ``n`` messages ``seq``..``seq + n - 1`` whose payloads are the third frame."""
    return pack({"seq": seq, "epoch": epoch, "n": n})


def decode_batch_header(frame: bytes) -> tuple[int, int, int, str]:
    """``(seq, epoch, n, type)`` of a batch's second frame; ``n`` is 0 for ``closed``."""
    seq, epoch, kind = decode_header(frame)
    n = unpack(frame).get("n", 0)
    if type(n) is not int or not (0 <= n <= MAX_BATCH) or (kind == "message") != (n > 0):
        raise malformed("a batch header has n 1 to 4096 (0 for closed)")
    return seq, epoch, n, kind


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
