"""Framing: msgpack, the node-to-node envelope, the client API frame, and message bases.

Everything on the wire is msgpack (docs/PROTOCOL.md §1). An envelope carries a batch
of messages ``[kind, body]``; each kind is one class (``zdps.wire.messages`` lists
them) whose ``decode`` checks the body completely or raises ``ProtocolError``, so a
handler only ever sees well-formed, typed values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Final, NamedTuple, Self

import msgpack

from zdps.wire.batches import MAX_BATCH
from zdps.wire.errors import E_BAD_VERSION, ProtocolError, malformed
from zdps.wire.fields import entry_check, shape
from zdps.wire.limits import U64

PROTOCOL_VERSION: Final = 2

_packer = msgpack.Packer(use_bin_type=True)
pack = _packer.pack


def unpack(frame: bytes) -> Any:
    """Decode one msgpack frame; any decoding failure becomes ProtocolError."""
    try:
        return msgpack.unpackb(frame, raw=False, strict_map_key=False, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated exception types
        raise malformed(f"undecodable msgpack: {str(exc) or type(exc).__name__}") from None


# ---------------------------------------------------------------- node <-> node


class Envelope(NamedTuple):
    """One ZeroMQ frame from a peer: who sent it, and its messages still undecoded."""

    scope: str
    sender: str
    incarnation: int
    messages: list  # raw [kind, body] arrays, decoded one by one (a bad one is skipped)


def encode_envelope(scope: str, sender: str, incarnation: int, messages: list) -> bytes:
    """One ZeroMQ frame from a node to a peer: encoded messages, in order."""
    return pack([PROTOCOL_VERSION, scope, sender, incarnation, messages])


def decode_envelope(frame: bytes) -> Envelope:
    """The envelope in ``frame``, or ProtocolError (the version is checked first)."""
    data = unpack(frame)
    if not isinstance(data, list) or not data:
        raise malformed("envelope is not a non-empty array")
    if data[0] != PROTOCOL_VERSION:
        raise ProtocolError(
            E_BAD_VERSION, f"peer speaks protocol {data[0]!r}, this node speaks {PROTOCOL_VERSION}"
        )
    if len(data) != 5:
        raise malformed("envelope must have 5 elements")
    _, scope, sender, incarnation, messages = data
    if not (
        type(scope) is str
        and type(sender) is str
        and sender
        and type(incarnation) is int
        and type(messages) is list
    ):
        raise malformed("envelope fields have the wrong types")
    return Envelope(scope, sender, incarnation, messages)


class NodeMessage:
    """A message inside an envelope, ``[kind, body]``; subclasses are frozen dataclasses.

    ``PROBE`` kinds travel on the probe link; ``MEMBERSHIP`` kinds are handed to
    membership even from a sender that is not (yet) an alive peer.
    """

    __slots__ = ()
    KIND: ClassVar[str]
    PROBE: ClassVar[bool] = False
    MEMBERSHIP: ClassVar[bool] = False

    @classmethod
    def decode(cls, body: Any) -> Self:
        raise NotImplementedError

    def body(self) -> Any:
        raise NotImplementedError

    def encode(self) -> list:
        return [self.KIND, self.body()]


class Reject(NamedTuple):
    """A batch entry that did not decode: skipped alone, refused under ``ack_id`` if set.

    ``count`` is the messages it says it carries, if it says so readably (else 1): what
    its sender counts in flight (§7.7).
    """

    ack_id: int
    why: str
    count: int = 1


@dataclass(frozen=True, slots=True)
class EntryList(NodeMessage):
    """A message whose body is a list of entries, decoded entry by entry.

    ``entries`` are the well-formed ones, in order; ``rejects`` the others. ``DATA``
    kinds count for flow control (docs/PROTOCOL.md §7.7). On the sending side the
    outbox appends entries to the message still being built for a destination.
    """

    entries: list
    rejects: tuple[Reject, ...] = ()
    DATA: ClassVar[bool] = False
    ACK_FIELD: ClassVar[int | None] = None  # index of the entry's ack_id, if it has one
    COUNT_FIELD: ClassVar[int | None] = None  # index of the entry's message count, if any
    # The entry's NamedTuple, from which SHAPE and ``entry`` are made (fields.py):
    ENTRY: ClassVar[type | None] = None
    RANGES: ClassVar[tuple[tuple[str, int, int], ...]] = ()  # (field, low, high excluded)
    CHOICES: ClassVar[tuple[tuple[str, tuple], ...]] = ()  # (field, the values allowed)
    IN_PLACE: ClassVar[bool] = False  # decoded entries stay msgpack's arrays

    def __init_subclass__(cls) -> None:
        # No super() call: the slotted dataclass is a copy, whose __class__ cell differs.
        entry = cls.__dict__.get("ENTRY")
        if entry is not None and "entry" not in cls.__dict__:
            cls.SHAPE = shape(entry)
            check = entry_check(
                cls.KIND,
                entry,
                dict((f, (lo, hi)) for f, lo, hi in cls.RANGES),
                dict(cls.CHOICES),
                cls.IN_PLACE,
            )
            cls.entry = staticmethod(check)  # type: ignore[method-assign, assignment]

    SHAPE: ClassVar[str] = ""  # the entry as the spec writes it

    @classmethod
    def entry(cls, raw: Any) -> Any:
        """One checked entry (a NamedTuple), or ProtocolError."""
        raise NotImplementedError

    @classmethod
    def decode(cls, body: Any) -> Self:
        if type(body) is not list:
            raise malformed(f"{cls.KIND} carries a list of entries")
        entries: list = []
        rejects: list[Reject] = []
        check = cls.entry
        for raw in body:
            try:
                entries.append(check(raw))
            except ProtocolError as exc:
                rejects.append(Reject(cls.named_ack_id(raw), exc.message, cls.named_count(raw)))
        return cls(entries, tuple(rejects))

    @classmethod
    def named_ack_id(cls, raw: Any) -> int:
        """The ack_id a bad entry names in its own field, else 0 (nobody to refuse)."""
        return _field(raw, cls.ACK_FIELD, U64 - 1) or 0

    @classmethod
    def named_count(cls, raw: Any) -> int:
        """The message count a bad entry names in its own field if it is in range, else 1."""
        return _field(raw, cls.COUNT_FIELD, MAX_BATCH) or 1

    def body(self) -> list:
        return self.entries

    def messages(self) -> int:
        """How many messages the entries carry: each carries one unless it is a batch."""
        at = self.COUNT_FIELD
        if at is None:
            return len(self.entries)
        return sum([entry[at] for entry in self.entries])

    def halves(self) -> tuple[Self, Self]:
        """Two messages of this kind with the first and second half of the entries."""
        half = len(self.entries) // 2
        return type(self)(self.entries[:half]), type(self)(self.entries[half:])


# ---------------------------------------------------------------- checks


def _field(raw: Any, at: int | None, high: int) -> int | None:
    """Field ``at`` of a raw entry if it is an int from 1 to ``high``, else None."""
    if at is None or type(raw) is not list or len(raw) <= at:
        return None
    value = raw[at]
    return value if type(value) is int and 0 < value <= high else None


def need_map(value: Any, what: str) -> dict:
    if type(value) is not dict:
        raise malformed(f"{what} is a map")
    return value


def need_int(value: Any, what: str, low: int = 0, high: int = U64) -> int:
    """An int (not a bool) in ``low <= value < high``."""
    if type(value) is not int or not low <= value < high:
        raise malformed(f"{what} is an integer from {low} to {high - 1}")
    return value


def need_str(value: Any, what: str) -> str:
    """A non-empty str."""
    if type(value) is not str or not value:
        raise malformed(f"{what} is a non-empty string")
    return value


def need_number(value: Any, what: str) -> float:
    """An int or float (not a bool)."""
    if type(value) is not float and type(value) is not int:
        raise malformed(f"{what} is a number")
    return float(value)


# ---------------------------------------------------------------- client <-> node


def encode_api(kind: str, *fields: Any) -> bytes:
    """One frame between a client and its node."""
    return pack([PROTOCOL_VERSION, kind, *fields])


def decode_api(frame: bytes) -> list:
    """Return [kind, *fields] of an API frame or raise ProtocolError."""
    data = unpack(frame)
    if not isinstance(data, list) or len(data) < 2:
        raise malformed("API frame is not an array of at least 2 elements")
    if data[0] != PROTOCOL_VERSION:
        raise ProtocolError(
            E_BAD_VERSION,
            f"client speaks protocol {data[0]!r}, this node speaks {PROTOCOL_VERSION}",
        )
    if not isinstance(data[1], str):
        raise malformed("API frame kind must be a string")
    return data[1:]
