"""The client side of the API protocol, without IO: frames out, outcomes in.

Both ``Client`` and ``AsyncClient`` use this; they differ only in how they wait.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any, NamedTuple

from zdps.daemon.config import DEFAULT_API
from zdps.topics import SYNC_PREFIX, exact_group, is_exact, prefix_group
from zdps.wire import (
    API_ACK,
    API_EVENT,
    API_NACK,
    API_PUBLISH,
    API_REPLY,
    API_REQUEST,
    E_MALFORMED,
    ProtocolError,
    decode_api,
    encode_api,
    unpack,
)

ENV_NODE = "ZDPS_NODE"


def node_endpoint(node: str | None) -> str:
    """The API endpoint to use: explicit, else $ZDPS_NODE, else the local default."""
    return node or os.environ.get(ENV_NODE) or DEFAULT_API


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


class Message(NamedTuple):
    """One delivered message."""

    topic: str
    seq: int
    epoch: int
    data: bytes
    type: str = "message"


def to_bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


def decode_delivery(frames: list[bytes]) -> Message:
    """Turn the three frames of the local PUB into a Message."""
    if len(frames) != 3 or not frames[0].endswith(b"\x00"):
        raise ProtocolError(E_MALFORMED, f"delivery of {len(frames)} frames")
    header = unpack(frames[1])
    return Message(
        frames[0][:-1].decode(),
        header["seq"],
        header["epoch"],
        frames[2],
        header.get("type", "message"),
    )


@dataclass(slots=True)
class SubscribePlan:
    """The SUB subscriptions for a subscribe call, and the token that proves them live."""

    groups: list[bytes]
    token: str

    @classmethod
    def make(cls, topics: list[str], prefix: bool) -> SubscribePlan:
        make_group = prefix_group if prefix else exact_group
        # A SUB that subscribes twice to one group leaks a count (libzmq reports both
        # subscribes but only one unsubscribe), so each group is subscribed once.
        return cls(list(dict.fromkeys(make_group(t) for t in topics)), uuid.uuid4().hex)

    @property
    def token_subscription(self) -> bytes:
        return SYNC_PREFIX + self.token.encode()

    @property
    def ready_args(self) -> dict[str, Any]:
        return {"token": self.token, "groups": self.groups}


class SubscriptionState:
    """Which exact topics of a subscription are still open (``topic delete`` ends them)."""

    def __init__(self, groups: list[bytes]) -> None:
        self.open_exact = {g[:-1].decode() for g in groups if is_exact(g)}
        self.prefixes = [g for g in groups if not is_exact(g)]

    def closed(self, topic: str) -> bool:
        """Note a ``closed`` control message; True if it ended one of our exact topics."""
        if topic in self.open_exact:
            self.open_exact.discard(topic)
            return True
        return False

    @property
    def ended(self) -> bool:
        return not self.open_exact and not self.prefixes


class ClientProtocol:
    """Request numbering and reply parsing."""

    def __init__(self) -> None:
        self._next_ref = 1

    def ref(self) -> int:
        ref = self._next_ref
        self._next_ref += 1
        return ref

    def publish_frame(self, entries: list[list]) -> bytes:
        """``entries`` are ``[ref, topic, payload]``; ref 0 asks for no ack."""
        return encode_api(API_PUBLISH, entries)

    def request_frame(self, ref: int, op: str, args: dict[str, Any]) -> bytes:
        return encode_api(API_REQUEST, ref, op, args)

    def parse_stream(
        self, frame: bytes
    ) -> tuple[int, list[PublishError], list[tuple[int, Any]], list[tuple[int, Any]]]:
        """Like ``parse``, but acks are only counted: (acked, failures, outcomes, events)."""
        kind, *fields = decode_api(frame)
        if kind == API_ACK:
            return sum(entry[4] for entry in fields[0]), [], [], []
        if kind == API_NACK:
            return 0, [PublishError(code, text) for _ref, code, text in fields[0]], [], []
        outcomes, events = self.parse(frame)
        return 0, [], outcomes, events

    def parse(self, frame: bytes) -> tuple[list[tuple[int, Any]], list[tuple[int, Any]]]:
        """Return ``(outcomes, events)``: outcomes are (ref, result or ZdpsError)."""
        kind, *fields = decode_api(frame)
        outcomes: list[tuple[int, Any]] = []
        events: list[tuple[int, Any]] = []
        if kind == API_ACK:
            # [ref, seq, nodes, subscribers, n]: a run of n consecutive refs and seqs.
            # Fields beyond these are for newer clients (forward compatible).
            for ref, seq, nodes, subscribers, n, *_ in fields[0]:
                outcomes += [
                    (ref + i, PublishResult(seq + i, nodes, subscribers)) for i in range(n)
                ]
        elif kind == API_NACK:
            outcomes = [(ref, PublishError(code, text)) for ref, code, text in fields[0]]
        elif kind == API_REPLY:
            ref, ok, result = fields
            if not ok:
                result = RequestError(result["code"], result["message"])
            outcomes = [(ref, result)]
        elif kind == API_EVENT:
            events = [(fields[0], fields[1])]
        return outcomes, events
