"""What the clients hand their users: endpoints, outcomes, errors and deliveries.

The names every client module and the CLI share, without IO and without pyzmq:
which node to talk to, the ack levels, the result and error types, and how a
delivery's three frames become a ``Message`` (docs/PROTOCOL.md §8, §9.1).
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any, NamedTuple

from zdps.endpoints import host, is_wildcard
from zdps.settings import DEFAULT_API
from zdps.topics import LOST_PREFIX
from zdps.wire import ACK_LEVELS, LEVEL_OWNER
from zdps.wire.batches import unpack_batch
from zdps.wire.delivery import decode_batch_header, decode_header
from zdps.wire.errors import malformed

ENV_NODE = "ZDPS_NODE"

# How many delivered messages a subscriber's SUB socket queues before the node's PUB
# starts dropping messages for it (on top of the node's own ``pub_hwm``).
DEFAULT_RCVHWM = 1_000_000
# Messages a stream (``publish_stream``, ``zdps publish``, ``zdps bench``) puts in one
# frame at most: a node's work per frame is paid once per this many (bench/RESULTS.md).
STREAM_BATCH = 1024

# A client-side error code (never on the wire): the client was closed, or stopped
# reading, before the answer came.
E_CLOSED = "closed"
# Client-side too: nothing at the endpoint answers as a zdps node (``check_node``).
E_UNREACHABLE = "unreachable"


def node_endpoint(node: str | None) -> str:
    """The API endpoint to use: explicit, else $ZDPS_NODE, else the local default."""
    return node or os.environ.get(ENV_NODE) or DEFAULT_API


def _is_loopback(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def reachable_pub(pub: str, api: str) -> str:
    """The pub endpoint to dial, given the node's advertised ``pub`` and our ``api``.

    A node that binds every address but advertises loopback hands out a pub endpoint
    that only works on its own host; a client that reached the API through another
    host dials that host instead.
    """
    pub_host, api_host = host(pub), host(api)
    if (
        pub_host
        and api_host
        and _is_loopback(pub_host)
        and not _is_loopback(api_host)
        and not is_wildcard(api)
    ):
        return pub.replace(f"//{pub_host}:", f"//{api_host}:", 1)
    return pub


class _Flush:
    """``FLUSH``: in the messages of ``publish_many``/``publish_stream``, "nothing more
    for now: send the frame being filled". ``publish_many`` then also waits for the
    outcomes of what is in flight and reports them. A reader of a pipe yields it before
    it waits for more, so what it already has travels as one frame, nothing waits behind
    a read that blocks, and what was acknowledged is known before it blocks."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "zdps.FLUSH"


FLUSH: Any = _Flush()


class ZdpsError(Exception):
    """Base class of zdps client errors; ``code`` is the protocol's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class PublishError(ZdpsError):
    """A publish that was refused or whose fate is unknown (the node could not confirm it)."""


class RequestError(ZdpsError):
    """A request the node refused or did not answer in time."""


class PublishResult(NamedTuple):
    """The owner's acknowledgement: the message's seq, and how far it went."""

    seq: int
    nodes: int
    subscribers: int


LOST = "lost"  # the type of a loss notice (docs/PROTOCOL.md §9.6)
LOST_TOPIC = LOST_PREFIX.decode()  # ... whose topic frame starts with it


class Message(NamedTuple):
    """One delivered message (or, of type ``closed`` or ``lost``, a control message)."""

    topic: str
    seq: int
    epoch: int
    data: bytes
    type: str = "message"


class Batch(NamedTuple):
    """Consecutive messages of one topic and epoch, as a batch-aware subscription
    receives them: ``payloads[i]`` is the message of seq ``seq + i``."""

    topic: str
    seq: int
    epoch: int
    payloads: list[bytes]

    def messages(self) -> list[Message]:
        """Each message on its own."""
        topic, seq, epoch = self.topic, self.seq, self.epoch
        return [Message(topic, seq + i, epoch, data) for i, data in enumerate(self.payloads)]


def ack_level(ack: bool | str) -> int:
    """The wire level of an ``ack`` argument: True or "owner", "replicated", False or "none".

    ``owner``: acknowledged once the owner sequenced it; ``replicated``: once the topic's
    replicas stored it too (refused with ``no_replica`` when none is reachable).
    """
    if ack is True or ack is False:
        return LEVEL_OWNER if ack else 0
    if ack not in ACK_LEVELS:
        raise ValueError(f"ack must be one of {', '.join(ACK_LEVELS)}, not {ack!r}")
    return ACK_LEVELS[ack]


def to_bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


def decode_delivery(frames: list[bytes]) -> Message:
    """Turn the three frames of the local PUB into a Message, or ProtocolError."""
    topic = _topic(frames)
    seq, epoch, kind = decode_header(frames[1])
    if kind == LOST:  # a loss notice (§9.6): about the topic after the prefix
        topic = topic.removeprefix(LOST_TOPIC)
    return Message(topic, seq, epoch, frames[2], kind)


def _topic(frames: list[bytes]) -> str:
    """The topic of a delivery's three frames: its first, without the NUL."""
    if len(frames) != 3 or not frames[0].endswith(b"\x00"):
        raise malformed(f"delivery of {len(frames)} frames")
    try:
        return frames[0][:-1].decode()
    except UnicodeDecodeError:
        raise malformed("a delivery's topic is not UTF-8") from None


def decode_batch_delivery(frames: list[bytes]) -> Batch | Message:
    """Turn the three frames of the batch PUB (§9.5) into a Batch, or a Message for a
    control message (``closed``); ProtocolError if they are not that."""
    topic = _topic(frames)
    seq, epoch, n, kind = decode_batch_header(frames[1])
    if kind == LOST:
        return Message(topic.removeprefix(LOST_TOPIC), seq, epoch, frames[2], kind)
    if kind != "message":
        return Message(topic, seq, epoch, frames[2], kind)
    return Batch(topic, seq, epoch, unpack_batch(frames[2], n))
