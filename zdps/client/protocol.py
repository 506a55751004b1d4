"""The client side of the API protocol, without IO: frames out, outcomes in.

Both ``Client`` and ``AsyncClient`` use this; they differ only in how they wait.
"""

from __future__ import annotations

import ipaddress
import os
import uuid
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any, NamedTuple

import zmq

from zdps.endpoints import host, is_wildcard
from zdps.settings import DEFAULT_API
from zdps.topics import SYNC_PREFIX, exact_group, is_exact, prefix_group
from zdps.wire import (
    ACK_LEVELS,
    API_ACK,
    API_EVENT,
    API_NACK,
    API_PUBLISH,
    API_REPLY,
    API_REQUEST,
    E_MALFORMED,
    E_TIMEOUT,
    LEVEL_OWNER,
    LEVEL_REPLICATED,
    ProtocolError,
    decode_api,
    encode_api,
    unpack,
)

ENV_NODE = "ZDPS_NODE"


# How many delivered messages a subscriber's SUB socket queues before the node's PUB
# starts dropping messages for it (on top of the node's own ``pub_hwm``).
DEFAULT_RCVHWM = 1_000_000

# A client-side error code (never on the wire): the client was closed, or stopped
# reading, before the answer came.
E_CLOSED = "closed"


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


def publish_entry(ref: int, topic: str, payload: bytes, level: int) -> list:
    """One entry of a publish frame; ref 0 asks for no ack."""
    return [ref, topic, payload, level] if level == LEVEL_REPLICATED else [ref, topic, payload]


def to_bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


def recv_delivery(sock: zmq.Socket, flags: int = 0) -> list[bytes]:
    """The three frames of one delivery from a node's PUB (docs/PROTOCOL.md §9.1).

    Only the node publishes on its PUB and every delivery has exactly three frames, so
    only the last frame's more-flag is read: pyzmq's recv_multipart reads it for every
    frame and costs about three times as much. Extra frames are drained and returned,
    for ``decode_delivery`` to refuse.
    """
    recv = sock.recv
    frames = [recv(flags), recv()]
    last = recv(0, copy=False)
    frames.append(last.bytes)
    while last.more:
        last = recv(0, copy=False)
        frames.append(last.bytes)
    return frames


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

    def groups(self) -> list[bytes]:
        """The SUB subscriptions still wanted."""
        return [exact_group(t) for t in self.open_exact] + self.prefixes


IDLE_CHECK = 0.25  # seconds without a delivery after which a subscription checks its link


class Reconnects:
    """Sends a SUB's subscriptions again when its connection to the node is re-established.

    libzmq's SUB reconnects to a node restarted on the same endpoint but does not resend
    its subscriptions (seen with libzmq 4.3.5), so the new node would never learn of
    them. A reconnected SUB receives nothing, so checking while idle is enough.
    """

    def __init__(self, sock: zmq.Socket) -> None:
        address = f"inproc://zdps-sub-monitor-{uuid.uuid4().hex}"
        sock.monitor(address, zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self._monitor = zmq.Context.shadow(sock.context.underlying).socket(zmq.PAIR)
        self._monitor.connect(address)
        self._handshakes = 0

    def check(self, sock: zmq.Socket, groups: list[bytes]) -> None:
        reconnected = False
        while self._monitor.poll(0):
            self._monitor.recv_multipart()
            self._handshakes += 1
            reconnected |= self._handshakes > 1
        if reconnected:
            for group in groups:  # the node sees a leave and a join: net one member
                sock.unsubscribe(group)
                sock.subscribe(group)

    def close(self) -> None:
        self._monitor.close(0)


class StreamLedger:
    """The frames of one publish stream that are in flight, settled by acks and nacks.

    Frames hold consecutive refs (``ClientProtocol.reserve``); each has a deadline. An
    ack or nack for a ref of a frame that is still open settles it; one for a frame
    that already expired (or any other ref of the stream) is dropped as late.
    """

    def __init__(self) -> None:
        self.acked = 0
        self.failures: list[PublishError] = []
        self.unsettled = 0  # messages sent and neither acked, nacked nor expired
        self._first = 0  # refs in [_first, _end) belong to this stream
        self._end = 0
        self._starts: list[int] = []  # first ref of each frame sent, ascending
        self._head = 0  # frames before this index are settled or expired
        self._open: dict[int, list] = {}  # first ref -> [end, unsettled, deadline]

    def add(self, first: int, count: int, deadline: float) -> None:
        """Note a frame of ``count`` refs from ``first`` on, sent now."""
        if not self._starts:
            self._first = first
        self._starts.append(first)
        self._open[first] = [first + count, count, deadline]
        self._end = first + count
        self.unsettled += count

    def owns(self, ref: int) -> bool:
        """True if ``ref`` is one of this stream's (open, settled or expired)."""
        return self._first <= ref < self._end

    def settle(self, ref: int, count: int, error: PublishError | None = None) -> None:
        """Acknowledge (or, with ``error``, fail) ``count`` refs from ``ref`` on."""
        starts, head = self._starts, self._head
        if head >= len(starts):
            return
        low, high = max(ref, starts[head]), min(ref + count, self._end)
        i = max(head, bisect_right(starts, low, head) - 1)
        while i < len(starts) and starts[i] < high:
            start = starts[i]
            frame = self._open.get(start)
            if frame is not None:
                taken = min(high, frame[0]) - max(low, start)
                if taken > 0:
                    frame[1] -= taken
                    self.unsettled -= taken
                    if error is None:
                        self.acked += taken
                    else:
                        self.failures += [error] * taken
                    if frame[1] <= 0:
                        del self._open[start]
            i += 1
        self._advance()

    def oldest_deadline(self) -> float | None:
        """The deadline of the oldest frame that is still open."""
        self._advance()
        if self._head < len(self._starts):
            return self._open[self._starts[self._head]][2]
        return None

    def expire(self, now: float, message: str) -> list[float]:
        """Fail every open frame whose deadline has passed; returns their deadlines."""
        expired = []
        while (deadline := self.oldest_deadline()) is not None and deadline <= now:
            start = self._starts[self._head]
            _end, unsettled, _ = self._open.pop(start)
            self.unsettled -= unsettled
            self.failures += [PublishError(E_TIMEOUT, message)] * unsettled
            expired.append(deadline)
        return expired

    def _advance(self) -> None:
        starts, head = self._starts, self._head
        while head < len(starts) and starts[head] not in self._open:
            head += 1
        if head > 1024 and head * 2 > len(starts):
            del starts[:head]
            head = 0
        self._head = head


class ClientProtocol:
    """Request numbering and reply parsing."""

    def __init__(self) -> None:
        self._next_ref = 1

    def ref(self) -> int:
        ref = self._next_ref
        self._next_ref += 1
        return ref

    def reserve(self, count: int) -> int:
        """Take ``count`` consecutive refs; returns the first."""
        ref = self._next_ref
        self._next_ref += count
        return ref

    def publish_frame(self, entries: list[list]) -> bytes:
        """``entries`` are ``[ref, topic, payload]``; ref 0 asks for no ack."""
        return encode_api(API_PUBLISH, entries)

    def request_frame(self, ref: int, op: str, args: dict[str, Any]) -> bytes:
        return encode_api(API_REQUEST, ref, op, args)

    def parse_stream(
        self, frame: bytes, ledger: StreamLedger
    ) -> tuple[list[tuple[int, Any]], list[tuple[int, Any]]]:
        """Like ``parse``, but acks and nacks of the stream's refs settle ``ledger``."""
        kind, fields = self._decode(frame)
        if kind not in (API_ACK, API_NACK):
            return self._parse(kind, fields)
        outcomes: list[tuple[int, Any]] = []
        try:
            if kind == API_ACK:
                for ref, seq, nodes, subscribers, n, *_ in fields[0]:
                    ledger.settle(ref, n)
                    if not (ledger.owns(ref) and ledger.owns(ref + n - 1)):
                        outcomes += [
                            (ref + i, PublishResult(seq + i, nodes, subscribers))
                            for i in range(n)
                            if not ledger.owns(ref + i)
                        ]
            else:
                for ref, code, text in fields[0]:
                    if ledger.owns(ref):
                        ledger.settle(ref, 1, PublishError(code, text))
                    else:
                        outcomes.append((ref, PublishError(code, text)))
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise ProtocolError(E_MALFORMED, f"bad {kind} frame: {exc!r}") from None
        return outcomes, []

    def parse(self, frame: bytes) -> tuple[list[tuple[int, Any]], list[tuple[int, Any]]]:
        """Return ``(outcomes, events)``: outcomes are (ref, result or ZdpsError).

        Raises ProtocolError for a frame that does not follow the protocol.
        """
        return self._parse(*self._decode(frame))

    @staticmethod
    def _decode(frame: bytes) -> tuple[str, list]:
        kind, *fields = decode_api(frame)
        return kind, fields

    @staticmethod
    def _parse(kind: str, fields: list) -> tuple[list[tuple[int, Any]], list[tuple[int, Any]]]:
        outcomes: list[tuple[int, Any]] = []
        events: list[tuple[int, Any]] = []
        try:
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
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise ProtocolError(E_MALFORMED, f"bad {kind} frame: {exc!r}") from None
        return outcomes, events
