"""The client API: what a client sends its node (§8); its answers are in answers.py.

Frames are ``[1, kind, ...]``. A client publishes (``pub``) and makes requests
(``req``); each request's args decode into the typed operation named by ``op``.
Both sides decode here, so node and clients agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Self

from zdps.topics import (
    QUEUE_MARK,
    InvalidTopic,
    check_queue_name,
    is_valid_group,
    queue_key,
)
from zdps.wire.batches import pack_batch
from zdps.wire.codec import encode_api, need_int
from zdps.wire.consumers import OWNER_OPS, Consume
from zdps.wire.data import LEVEL_OWNER, LEVEL_REPLICATED, Retention
from zdps.wire.data import decode_retention as _retention
from zdps.wire.errors import E_INVALID_TOPIC, E_UNKNOWN_OP, ProtocolError, malformed
from zdps.wire.limits import HISTORY_PAGE, U64
from zdps.wire.ops import Op, need_topic

API_PUBLISH = "pub"
API_REQUEST = "req"
API_ACK = "ack"
API_NACK = "nack"
API_REPLY = "rep"
API_EVENT = "event"
API_QUEUED = "msg"  # messages for one member of a queue group (§8.5)


# ---------------------------------------------------------------- publishing


def publish_entry(
    ref: int, topic: str, payloads: list[bytes], level: int, lazy: bool = False
) -> list:
    """One entry of a publish frame: a batch of ``payloads``; ref 0 asks for no ack.

    The level and ``lazy`` (the client has others in flight: the ack may be paced) travel
    only when they are not the defaults.
    """
    entry = [ref, topic, len(payloads), pack_batch(payloads)]
    if lazy and ref:
        entry += [level or LEVEL_OWNER, True]
    elif level == LEVEL_REPLICATED:
        entry.append(level)
    return entry


def encode_publish(entries: list[list]) -> bytes:
    """``publish_entry`` entries as one ``pub`` frame."""
    return encode_api(API_PUBLISH, entries)


# ---------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class Info(Op):
    """The node's identity and endpoints."""

    OP = "info"


@dataclass(frozen=True, slots=True)
class Status(Op):
    """Everything ``zdps status`` shows."""

    OP = "status"


@dataclass(frozen=True, slots=True)
class TopicOp(Op):
    SHAPE = "{topic: str}"
    topic: str

    @classmethod
    def decode(cls, args: dict) -> Self:
        if "topic" not in args:
            raise malformed(f"{cls.OP} needs a topic")
        return cls(need_topic(args["topic"]))

    def args(self) -> dict[str, Any]:
        return {"topic": self.topic}


@dataclass(frozen=True, slots=True)
class Members(TopicOp):
    """The nodes a publish to ``topic`` reaches, with their subscriber counts."""

    OP = "members"


@dataclass(frozen=True, slots=True)
class Watch(TopicOp):
    """``members`` now, then an ``event`` after every change."""

    OP = "watch"


@dataclass(frozen=True, slots=True)
class Delete(TopicOp):
    """End every subscription to ``topic`` with a final ``closed`` message."""

    OP = "delete"


@dataclass(frozen=True, slots=True)
class Unwatch(Op):
    """End the watch made by the request ``ref``."""

    OP = "unwatch"
    SHAPE = "{ref: int}"
    ref: int

    @classmethod
    def decode(cls, args: dict) -> Unwatch:
        return cls(need_int(args.get("ref"), "unwatch's ref"))

    def args(self) -> dict[str, Any]:
        return {"ref": self.ref}


@dataclass(frozen=True, slots=True)
class Ready(Op):
    """Answer once ``groups`` are known to their owners, after ``token`` shows up (§9.4)."""

    OP = "ready"
    SHAPE = "{token: str, groups: [bin, ...]}"
    token: str
    groups: list[bytes]

    @classmethod
    def decode(cls, args: dict) -> Ready:
        token, groups = args.get("token"), args.get("groups")
        if type(token) is not str or not token:
            raise malformed("ready needs a non-empty text token")
        if type(groups) is not list or not all(
            type(g) is bytes and is_valid_group(g) for g in groups
        ):
            raise malformed("ready's groups are a list of valid subscriptions")
        return cls(token, groups)

    def args(self) -> dict[str, Any]:
        return {"token": self.token, "groups": self.groups}


@dataclass(frozen=True, slots=True)
class Create(Op):
    """Set ``topic``'s retention at its owner and replicas."""

    OP = "create"
    SHAPE = "{topic: str, history: int, ttl: float}"
    topic: str
    retention: Retention

    @classmethod
    def decode(cls, args: dict) -> Create:
        if not {"topic", "history", "ttl"} <= args.keys():
            raise malformed("create needs topic, history and ttl")
        return cls(need_topic(args["topic"]), _retention(args["history"], args["ttl"]))

    def args(self) -> dict[str, Any]:
        return {"topic": self.topic, "history": self.retention.count, "ttl": self.retention.age}


MAX_DRAIN_TIMEOUT = 3600.0  # seconds a drain may be given


@dataclass(frozen=True, slots=True)
class Drain(Op):
    """Hand everything over and leave (§4.5); answered when the node has drained."""

    OP = "drain"
    SHAPE = "{timeout?: float}"
    timeout: float | None = None

    @classmethod
    def decode(cls, args: dict) -> Drain:
        timeout = args.get("timeout")
        if timeout is not None and (
            type(timeout) not in (int, float) or not 0 < timeout <= MAX_DRAIN_TIMEOUT
        ):
            raise malformed(f"drain's timeout is a number over 0, at most {MAX_DRAIN_TIMEOUT}")
        return cls(timeout)

    def args(self) -> dict[str, Any]:
        return {} if self.timeout is None else {"timeout": self.timeout}


Position = tuple[int, int]  # (epoch, seq)


def _position(value: Any, name: str) -> Position:
    if type(value) is list and len(value) == 2 and all(type(x) is int for x in value):
        return value[0], value[1]
    raise malformed(f"{name} is [epoch, seq]")


@dataclass(frozen=True, slots=True)
class HistoryQuery(Op):
    """A page of a topic's stored messages after ``after`` (or from ``since``) (§7.9)."""

    OP = "history"
    SHAPE = (
        "{topic: str, since?: int, after?: [epoch int, seq int],"
        " until?: [epoch int, seq int], limit?: int}"
    )
    topic: str
    since: int | None = None  # a seq of the newest stored epoch; 0: everything
    after: Position = (0, 0)
    until: Position | None = None  # excluded
    limit: int = HISTORY_PAGE

    @classmethod
    def decode(cls, args: dict) -> HistoryQuery:
        topic = need_topic(args.get("topic"))
        since = args.get("since")
        if since is not None:
            since, after = need_int(since, "since"), (0, 0)
        else:
            after = _position(args.get("after"), "after")
        until = args.get("until")
        limit = need_int(args.get("limit", HISTORY_PAGE), "limit", 1, HISTORY_PAGE + 1)
        return cls(topic, since, after, None if until is None else _position(until, "until"), limit)

    def args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"topic": self.topic, "limit": self.limit}
        if self.since is not None:
            args["since"] = self.since
        else:
            args["after"] = list(self.after)
        if self.until is not None:
            args["until"] = list(self.until)
        return args


@dataclass(frozen=True, slots=True)
class QueueJoin(Op):
    """This connection becomes a member of queue group ``queue`` on ``subscription``
    (an exact topic ``topic\\x00`` or a prefix, as a SUB spells it): it gets one copy of
    each message of the group's share, in ``msg`` frames (§8.5). Joining again is a no-op."""

    OP = "queue_join"
    SHAPE = "{queue: str, subscription: bin}"
    queue: str
    subscription: bytes

    @classmethod
    def decode(cls, args: dict) -> Self:
        queue, subscription = args.get("queue"), args.get("subscription")
        try:
            name = check_queue_name(queue)  # type: ignore[arg-type]
            if type(subscription) is not bytes or not is_valid_group(subscription):
                raise InvalidTopic(f"{subscription!r:.64} is not a topic or prefix subscription")
            if QUEUE_MARK in subscription:
                raise InvalidTopic("a subscription has no \\x1f")
            queue_key(name, subscription)
        except InvalidTopic as exc:
            raise ProtocolError(E_INVALID_TOPIC, f"{cls.OP}: {exc}") from None
        return cls(queue, subscription)  # type: ignore[arg-type]

    @property
    def key(self) -> bytes:
        """The queue group's key in the scope overlay."""
        return queue_key(self.queue.encode(), self.subscription)

    def args(self) -> dict[str, Any]:
        return {"queue": self.queue, "subscription": self.subscription}


@dataclass(frozen=True, slots=True)
class QueueLeave(QueueJoin):
    """This connection leaves queue group ``queue`` on ``subscription``."""

    OP = "queue_leave"


MAX_SUBSCRIBER_NAME = 128  # characters of a ``lost`` report's subscriber name
MAX_LOST = 2**32  # messages one ``lost`` report may name (the sums stay below 2**64)


@dataclass(frozen=True, slots=True)
class Lost(Op):
    """A subscriber's report: it missed ``missed`` messages of ``topic`` live, and got
    ``recovered`` of them from history (§8.3); the node shows it per subscriber."""

    OP = "lost"
    SHAPE = "{topic: str, missed: int, recovered: int, subscriber: str}"
    topic: str
    missed: int
    recovered: int
    subscriber: str

    @classmethod
    def decode(cls, args: dict) -> Lost:
        missed, recovered = args.get("missed"), args.get("recovered")
        if (
            type(missed) is not int
            or type(recovered) is not int
            or not 0 <= recovered <= missed < MAX_LOST
        ):
            raise malformed(f"lost needs ints 0 <= recovered <= missed < {MAX_LOST}")
        name = args.get("subscriber")
        if (
            type(name) is not str
            or not name
            or len(name) > MAX_SUBSCRIBER_NAME
            or not name.isprintable()
        ):
            raise malformed(
                f"lost needs a subscriber name of 1-{MAX_SUBSCRIBER_NAME} printable characters"
            )
        return cls(need_topic(args.get("topic")), missed, recovered, name)

    def args(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "missed": self.missed,
            "recovered": self.recovered,
            "subscriber": self.subscriber,
        }


OPS: dict[str, type[Op]] = {
    op.OP: op
    for op in (
        Info,
        Status,
        Members,
        Watch,
        Unwatch,
        Ready,
        Delete,
        Create,
        HistoryQuery,
        Lost,
        Drain,
        QueueJoin,
        QueueLeave,
        *OWNER_OPS,
        Consume,
    )
}


class Request(NamedTuple):
    ref: int  # > 0, echoed in the answer
    op: Op


def request_ref(fields: list) -> int:
    """The ref to answer a bad request with: its own if it is an int > 0, else 0."""
    ref = fields[0] if fields else 0
    return ref if type(ref) is int and 0 < ref < U64 else 0


def decode_request(fields: list) -> Request:
    """``[ref, op, args]`` (after ``[1, "req"``), or ProtocolError."""
    ref = request_ref(fields)
    if len(fields) != 3 or type(fields[2]) is not dict or not ref:
        raise malformed("a request is [ref > 0, op, {args}]")
    op = OPS.get(fields[1]) if type(fields[1]) is str else None
    if op is None:
        raise ProtocolError(E_UNKNOWN_OP, f"unknown request {str(fields[1])[:32]!r}")
    return Request(ref, op.decode(fields[2]))


def encode_request(ref: int, op: Op) -> bytes:
    return encode_api(API_REQUEST, ref, op.OP, op.args())
