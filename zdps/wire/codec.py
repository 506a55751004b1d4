"""The zdps wire protocol, version 1: framing shared by daemon, clients and tests.

Everything on the wire is msgpack. ``docs/PROTOCOL.md`` is the specification; this
module is its single implementation, so the two change together. Decoders here only
check the outer shape; each handler validates the fields it uses and reports a
``ProtocolError`` that the daemon counts and logs.
"""

from __future__ import annotations

from typing import Any, Final

import msgpack

PROTOCOL_VERSION: Final = 1

# Node <-> node message kinds (first element of each message inside an envelope).
HELLO: Final = "hello"
PEERS: Final = "peers"
PING: Final = "ping"
BYE: Final = "bye"
SYNC: Final = "sync"
UPDATE: Final = "update"
BARRIER: Final = "barrier"
BARRIER_OK: Final = "barrier_ok"
FORWARD: Final = "fwd"
FANOUT: Final = "fanout"
ACK: Final = "ack"
NACK: Final = "nack"
CLOSE: Final = "close"
CLOSED: Final = "closed"
CONSUMED: Final = "consumed"
RESYNC: Final = "resync"

# Failure detection (SWIM), sent on the probe channel (docs/PROTOCOL.md §4.4).
PROBE: Final = "probe"
PROBE_REQ: Final = "probe_req"
PROBE_ACK: Final = "probe_ack"
PROBE_NACK: Final = "probe_nack"
SUSPECT: Final = "suspect"
ALIVE: Final = "alive"
DEAD: Final = "dead"

# History and replication (docs/PROTOCOL.md §7.8, §7.9).
STORE: Final = "store"
STORED: Final = "stored"
HANDOFF: Final = "handoff"
HISTORY: Final = "history"
HISTORY_REPLY: Final = "history_rep"
CONFIGURE: Final = "configure"

# Publish ack levels (the optional fourth field of a publish entry, fifth of a fwd).
LEVEL_NONE: Final = 0
LEVEL_OWNER: Final = 1
LEVEL_REPLICATED: Final = 2
ACK_LEVELS: Final = {"none": LEVEL_NONE, "owner": LEVEL_OWNER, "replicated": LEVEL_REPLICATED}

# Client <-> node kinds (second element of each API frame).
API_PUBLISH: Final = "pub"
API_REQUEST: Final = "req"
API_ACK: Final = "ack"
API_NACK: Final = "nack"
API_REPLY: Final = "rep"
API_EVENT: Final = "event"

# Error codes carried by NACKs and failed replies.
E_INVALID_TOPIC: Final = "invalid_topic"
E_TOO_LARGE: Final = "too_large"
E_MALFORMED: Final = "malformed"
E_BAD_VERSION: Final = "bad_version"
E_UNKNOWN_OP: Final = "unknown_op"
E_UNKNOWN_KIND: Final = "unknown_kind"
E_WRONG_SCOPE: Final = "wrong_scope"
E_NO_ROUTE: Final = "no_route"
E_OWNER_LOST: Final = "owner_lost"
E_TIMEOUT: Final = "timeout"
E_TOO_MANY_HOPS: Final = "too_many_hops"
E_NO_REPLICA: Final = "no_replica"
E_REPLICA_LOST: Final = "replica_lost"


class ProtocolError(Exception):
    """A frame that does not follow the protocol; ``code`` is one of the E_* names."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_packer = msgpack.Packer(use_bin_type=True)
pack = _packer.pack


def unpack(frame: bytes) -> Any:
    """Decode one msgpack frame; any decoding failure becomes ProtocolError."""
    try:
        return msgpack.unpackb(frame, raw=False, strict_map_key=False, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated exception types
        raise ProtocolError(E_MALFORMED, f"undecodable msgpack: {exc}") from None


# ---------------------------------------------------------------- node <-> node


def encode_envelope(scope: str, sender: str, incarnation: int, messages: list) -> bytes:
    """One ZeroMQ frame from a node to a peer: a batch of messages, in order."""
    return pack([PROTOCOL_VERSION, scope, sender, incarnation, messages])


def decode_envelope(frame: bytes) -> tuple[str, str, int, list]:
    """Return (scope, sender, incarnation, messages) or raise ProtocolError."""
    data = unpack(frame)
    if not isinstance(data, list) or not data:
        raise ProtocolError(E_MALFORMED, "envelope is not a non-empty array")
    if data[0] != PROTOCOL_VERSION:
        raise ProtocolError(
            E_BAD_VERSION, f"peer speaks protocol {data[0]!r}, this node speaks {PROTOCOL_VERSION}"
        )
    if len(data) != 5:
        raise ProtocolError(E_MALFORMED, "envelope must have 5 elements")
    _, scope, sender, incarnation, messages = data
    if not (
        isinstance(scope, str)
        and isinstance(sender, str)
        and sender
        and isinstance(incarnation, int)
        and isinstance(messages, list)
    ):
        raise ProtocolError(E_MALFORMED, "envelope fields have the wrong types")
    return scope, sender, incarnation, messages


# ---------------------------------------------------------------- client <-> node


def encode_api(kind: str, *fields: Any) -> bytes:
    """One frame between a client and its node."""
    return pack([PROTOCOL_VERSION, kind, *fields])


def decode_api(frame: bytes) -> list:
    """Return [kind, *fields] of an API frame or raise ProtocolError."""
    data = unpack(frame)
    if not isinstance(data, list) or len(data) < 2:
        raise ProtocolError(E_MALFORMED, "API frame is not an array of at least 2 elements")
    if data[0] != PROTOCOL_VERSION:
        raise ProtocolError(
            E_BAD_VERSION,
            f"client speaks protocol {data[0]!r}, this node speaks {PROTOCOL_VERSION}",
        )
    if not isinstance(data[1], str):
        raise ProtocolError(E_MALFORMED, "API frame kind must be a string")
    return data[1:]


# ---------------------------------------------------------------- local PUB


_SEQ_KEY = b"\x82\xa3seq\xcf"  # map of 2; "seq": uint64
_EPOCH_KEY = b"\xa5epoch\xcf"  # "epoch": uint64


def message_header(seq: int, epoch: int) -> bytes:
    """The second frame of a delivered message: msgpack ``{"seq": seq, "epoch": epoch}``.

    Built by hand (fixed-width uint64 fields, still plain msgpack) because it is made
    once per delivered message.
    """
    return _SEQ_KEY + seq.to_bytes(8, "big") + _EPOCH_KEY + epoch.to_bytes(8, "big")


def closed_header(seq: int, epoch: int) -> bytes:
    """The second frame of the final control message of a deleted topic."""
    return pack({"seq": seq, "epoch": epoch, "type": "closed"})
