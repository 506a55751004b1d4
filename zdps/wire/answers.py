"""The node's answers to a client (§8): ``ack``/``nack`` runs for publishes, ``rep`` for
requests, ``event`` for watches and ``msg`` for queue group members, decoded here for
every client.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from zdps.wire.api import API_ACK, API_EVENT, API_NACK, API_QUEUED, API_REPLY
from zdps.wire.batches import MAX_BATCH, unpack_batch
from zdps.wire.codec import U64, need_int, need_map, need_str
from zdps.wire.consumers import API_CONSUMER_MSG
from zdps.wire.data import AckRun
from zdps.wire.errors import malformed


class Reply(NamedTuple):
    ref: int  # 0: answers a frame that could not be attributed
    ok: bool
    result: Any  # on failure {"code", "message"}


class Event(NamedTuple):
    ref: int  # the watch's request
    body: dict


class Acks(NamedTuple):
    runs: list[AckRun]


class RefusedRun(NamedTuple):
    """``n`` publishes from ``ref`` on were refused with ``code``."""

    ref: int
    code: str
    message: str
    n: int


class Nacks(NamedTuple):
    entries: list[RefusedRun]


class Share(NamedTuple):
    """Messages of a queue group for one member: ``payloads[i]`` has seq ``seq + i`` (§8.5)."""

    topic: str
    seq: int
    epoch: int
    payloads: list[bytes]


class Handed(NamedTuple):
    """A message of a durable consumer for one member, its ``deliveries``-th time (§8.6)."""

    topic: str
    name: str
    epoch: int
    seq: int
    deliveries: int
    payload: bytes


class HandedOut(NamedTuple):
    """The messages of a ``cmsg`` frame, in order."""

    messages: list[Handed]


Answer = Acks | Nacks | Reply | Event | Share | HandedOut
HANDED_SHAPE = "a consumer message is [topic, name, epoch, seq, deliveries, payload], ints unsigned"


def decode_answer(kind: str, fields: list) -> Answer | None:
    """A frame from the node (after ``[1``); None for a kind this client does not know.

    Fields after the first five of an ack entry are for newer clients (§11).
    """
    if kind == API_ACK:
        return Acks([_ack_run(e) for e in _entry_list(kind, fields)])
    if kind == API_NACK:
        return Nacks([_nack(e) for e in _entry_list(kind, fields)])
    if kind == API_REPLY:
        if len(fields) != 3 or type(fields[1]) is not bool:
            raise malformed("a reply is [ref, ok, result]")
        ref, ok, result = fields
        if not ok and not _is_error(result):
            raise malformed("a failed reply's result is {code, message}")
        return Reply(need_int(ref, "a reply's ref"), ok, result)
    if kind == API_EVENT:
        if len(fields) < 2:
            raise malformed("an event is [ref, body]")
        return Event(need_int(fields[0], "an event's ref"), need_map(fields[1], "an event"))
    if kind == API_QUEUED:
        if len(fields) != 5 or type(fields[0]) is not str or type(fields[4]) is not bytes:
            raise malformed("a queue share is [topic, seq, epoch, n, batch]")
        topic, seq, epoch, n, batch = fields
        n = need_int(n, "a share's n", 1, MAX_BATCH + 1)
        seq, epoch = need_int(seq, "a share's seq"), need_int(epoch, "a share's epoch")
        return Share(topic, seq, epoch, unpack_batch(batch, n))
    if kind == API_CONSUMER_MSG:
        return HandedOut([_handed(m) for m in _entry_list(kind, fields)])
    return None


def _entry_list(kind: str, fields: list) -> list:
    if not fields or type(fields[0]) is not list:
        raise malformed(f"{kind} carries a list of entries")
    return fields[0]


def _ack_run(entry: Any) -> AckRun:
    if type(entry) is not list or len(entry) < 5:
        raise malformed("ack entries are [ref, seq, nodes, subscribers, n]")
    run = AckRun(*(need_int(x, "an ack field") for x in entry[:5]))
    if run.n < 1:
        raise malformed("an ack run is at least 1 long")
    return run


def _nack(entry: Any) -> RefusedRun:
    if type(entry) is not list or len(entry) != 4 or type(entry[2]) is not str:
        raise malformed("nack entries are [ref, code, message, n]")
    ref, code = need_int(entry[0], "a nack's ref"), need_str(entry[1], "a code")
    return RefusedRun(ref, code, entry[2], need_int(entry[3], "a nack's n", 1))


def _handed(m: Any) -> Handed:
    """Checked field by field inline: a worker decodes one per message it gets."""
    if type(m) is not list or len(m) != 6:
        raise malformed(HANDED_SHAPE)
    topic, name, epoch, seq, deliveries, payload = m
    if (
        type(topic) is not str
        or type(name) is not str
        or type(payload) is not bytes
        or type(epoch) is not int
        or type(seq) is not int
        or type(deliveries) is not int
        or not (0 <= epoch < U64 and 0 <= seq < U64 and 0 <= deliveries < U64)
    ):
        raise malformed(HANDED_SHAPE)
    return tuple.__new__(Handed, m)  # type: ignore[return-value]  # checked: 6 fields


def _is_error(result: Any) -> bool:
    return type(result) is dict and type(result.get("code")) is str and "message" in result


def error_result(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def error_fields(result: dict[str, str]) -> tuple[str, str]:
    """``(code, message)`` of a failed reply's result (``decode_answer`` checked it)."""
    return result["code"], str(result["message"])
