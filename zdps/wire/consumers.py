"""Durable consumers on the wire (docs/PROTOCOL.md §8.6): the ops, and the node messages.

A consumer lives at its topic's owner. A client's ``consumer_*`` request goes to its
node, which forwards it to the owner (``owner_req``) and relays the answer
(``owner_rep``). A member (``consume``) is a connection of the node it asked; the owner
sends it messages through that node (``consumer_msg``), and its acks come back the same
way (``cack`` frames from the member, ``consumer_ack`` entries to the owner).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Self

from zdps.topics import InvalidTopic, check_queue_name, consumer_key
from zdps.wire.codec import EntryList, NodeMessage, need_int, need_map
from zdps.wire.errors import E_INVALID_TOPIC, ProtocolError, malformed
from zdps.wire.limits import U64
from zdps.wire.ops import Op, need_topic

API_CONSUMER_MSG = "cmsg"  # node -> member: [topic, name, epoch, seq, deliveries, payload]
API_CONSUMER_ACK = "cack"  # member -> node: [[topic, name, epoch, seq, verdict], ...]
ACK, NAK, TERM = 0, 1, 2  # a verdict on one delivered message
VERDICTS = (ACK, NAK, TERM)
DEFAULT_ACK_WAIT, DEFAULT_MAX_DELIVER, DEFAULT_MAX_PENDING = 30.0, 5, 1000
MAX_ACK_WAIT = 86_400.0  # seconds
MAX_DELIVER = 1000
MAX_PENDING = 100_000
START_NEW, START_ALL = "new", "all"


def need_name(value: Any, topic: str) -> str:
    """A consumer's name, valid alone and with ``topic``; ``invalid_topic`` if not."""
    try:
        consumer_key(check_queue_name(value, "consumer name"), topic.encode())
    except InvalidTopic as exc:
        raise ProtocolError(E_INVALID_TOPIC, str(exc)) from None
    return value


@dataclass(frozen=True, slots=True)
class ConsumerOp(Op):
    """An op on one consumer of one topic: answered by the topic's owner."""

    SHAPE = "{topic: str, name: str}"
    topic: str
    name: str

    @classmethod
    def decode(cls, args: dict) -> Self:
        topic = need_topic(args.get("topic"))
        return cls(topic, need_name(args.get("name"), topic))

    def args(self) -> dict[str, Any]:
        return {"topic": self.topic, "name": self.name}


@dataclass(frozen=True, slots=True)
class ConsumerCreate(Op):
    """Create a durable consumer (again with the same settings: nothing changes)."""

    OP = "consumer_create"
    SHAPE = (
        "{topic: str, name: str, ack_wait?: float, max_deliver?: int, max_pending?: int,"
        " start?: str or int}"
    )
    topic: str
    name: str
    ack_wait: float = DEFAULT_ACK_WAIT
    max_deliver: int = DEFAULT_MAX_DELIVER
    max_pending: int = DEFAULT_MAX_PENDING
    start: str | int = START_NEW  # "new", "all", or the first seq of the newest epoch

    @classmethod
    def decode(cls, args: dict) -> ConsumerCreate:
        topic = need_topic(args.get("topic"))
        name = need_name(args.get("name"), topic)
        ack_wait = args.get("ack_wait", DEFAULT_ACK_WAIT)
        if type(ack_wait) not in (int, float) or not 0 < ack_wait <= MAX_ACK_WAIT:
            raise malformed(f"ack_wait is over 0 and at most {MAX_ACK_WAIT} s")
        max_deliver = args.get("max_deliver", DEFAULT_MAX_DELIVER)
        max_deliver = need_int(max_deliver, "max_deliver", 1, MAX_DELIVER + 1)
        max_pending = args.get("max_pending", DEFAULT_MAX_PENDING)
        max_pending = need_int(max_pending, "max_pending", 1, MAX_PENDING + 1)
        start = args.get("start", START_NEW)
        if start not in (START_NEW, START_ALL) and not (type(start) is int and 0 < start < U64):
            raise malformed('start is "new", "all" or a seq from 1')
        return cls(topic, name, float(ack_wait), max_deliver, max_pending, start)

    def args(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "name": self.name,
            "ack_wait": self.ack_wait,
            "max_deliver": self.max_deliver,
            "max_pending": self.max_pending,
            "start": self.start,
        }


@dataclass(frozen=True, slots=True)
class ConsumerInfo(ConsumerOp):
    """A consumer's settings, position, pending messages and counts."""

    OP = "consumer_info"


@dataclass(frozen=True, slots=True)
class ConsumerDelete(ConsumerOp):
    """Delete a consumer: its pending messages are dropped, its members get nothing more."""

    OP = "consumer_delete"


@dataclass(frozen=True, slots=True)
class ConsumerList(Op):
    """The consumers of a topic."""

    OP = "consumer_list"
    SHAPE = "{topic: str}"
    topic: str

    @classmethod
    def decode(cls, args: dict) -> ConsumerList:
        return cls(need_topic(args.get("topic")))

    def args(self) -> dict[str, Any]:
        return {"topic": self.topic}


@dataclass(frozen=True, slots=True)
class Consume(ConsumerOp):
    """This connection becomes a member of the consumer: the owner sends it messages."""

    OP = "consume"

    @property
    def key(self) -> bytes:
        """The consumer's key in the scope overlay (members counted per node)."""
        return consumer_key(self.name.encode(), self.topic.encode())


OWNER_OPS = (ConsumerCreate, ConsumerInfo, ConsumerDelete, ConsumerList)


# ---------------------------------------------------------------- between nodes


@dataclass(frozen=True, slots=True)
class OwnerReq(NodeMessage):
    """A client's request that the topic's owner answers, forwarded by the client's node."""

    KIND = "owner_req"
    SHAPE = "[req_id int, op str, args map]"
    req_id: int
    op: Op

    @classmethod
    def decode(cls, body: Any) -> OwnerReq:
        if type(body) is not list or len(body) != 3:
            raise malformed("owner_req is [req_id, op, args]")
        by_name = {op.OP: op for op in OWNER_OPS}
        op = by_name.get(body[1]) if type(body[1]) is str else None
        if op is None:
            raise malformed(f"owner_req names no owner op: {str(body[1])[:32]!r}")
        return cls(need_int(body[0], "a request id"), op.decode(need_map(body[2], "args")))

    def body(self) -> list:
        return [self.req_id, self.op.OP, self.op.args()]


@dataclass(frozen=True, slots=True)
class OwnerRep(NodeMessage):
    """The owner's answer to ``owner_req``: relayed to the client as its ``rep``."""

    KIND = "owner_rep"
    SHAPE = "[req_id int, ok bool, result any]"
    req_id: int
    ok: bool
    result: Any

    @classmethod
    def decode(cls, body: Any) -> OwnerRep:
        if type(body) is not list or len(body) != 3 or type(body[1]) is not bool:
            raise malformed("owner_rep is [req_id, ok, result]")
        result = body[2]
        if not body[1] and not (
            type(result) is dict
            and type(result.get("code")) is str
            and type(result.get("message")) is str
        ):
            raise malformed("a failed owner_rep's result is {code, message}")
        return cls(need_int(body[0], "a request id"), body[1], result)

    def body(self) -> list:
        return [self.req_id, self.ok, self.result]


class ConsumerMsgEntry(NamedTuple):
    topic: str
    name: str
    epoch: int
    seq: int
    deliveries: int  # 1 the first time
    payload: bytes


@dataclass(frozen=True, slots=True)
class ConsumerMsg(EntryList):
    """Messages of a durable consumer, for one member at the receiving node."""

    KIND = "consumer_msg"
    DATA = True
    ENTRY = ConsumerMsgEntry
    RANGES = (("seq", 1, U64), ("deliveries", 1, MAX_DELIVER + 1))


class ConsumerAckEntry(NamedTuple):
    topic: str
    name: str
    epoch: int
    seq: int
    verdict: int  # ACK, NAK or TERM
    # The delivery the verdict answers (0: not said); a nak of an older one than the
    # last is stale: the message went to another member since, which holds it now.
    deliveries: int = 0


@dataclass(frozen=True, slots=True)
class ConsumerAck(EntryList):
    """Members' verdicts on the messages they got, relayed by their node to the owner."""

    KIND = "consumer_ack"
    ENTRY = ConsumerAckEntry
    RANGES = (("seq", 1, U64), ("deliveries", 0, MAX_DELIVER + 1))
    CHOICES = (("verdict", VERDICTS),)


def decode_verdicts(body: Any) -> list[ConsumerAckEntry]:
    """A member's ``cack`` frame body: its verdicts, each checked as a ``consumer_ack``
    entry; ``malformed`` if any is not one."""
    message = ConsumerAck.decode(body)
    if message.rejects:
        raise malformed(f"cack entries are {ConsumerAck.SHAPE}")
    return message.entries


class ConsumerStateEntry(NamedTuple):
    topic: str
    name: str
    settings: ConsumerCreate | None  # None: the consumer was deleted
    cursor: tuple[int, int]
    pending: list  # [[epoch, seq, deliveries], ...]
    marks: list | None = None  # [[epoch, newest seq handed out], ...]; None: not sent


@dataclass(frozen=True, slots=True)
class ConsumerState(EntryList):
    """A consumer's state, from its owner to the topic's replicas (§8.6), and to a new
    owner when the ring moves the topic: what a successor continues from."""

    KIND = "consumer_state"
    SHAPE = (
        "[topic str, name str, settings map or nil, cursor [epoch int, seq int],"
        " [[epoch int, seq int, deliveries int], ...], [[epoch int, seq int], ...]?]"
    )

    @classmethod
    def entry(cls, raw: Any) -> ConsumerStateEntry:
        if type(raw) is not list or len(raw) not in (5, 6):
            raise malformed(f"consumer_state entries are {cls.SHAPE}")
        topic, name, settings, cursor, pending, *rest = raw
        marks = rest[0] if rest else None
        if marks is not None and (type(marks) is not list or not all(map(_position, marks))):
            raise malformed("a consumer_state's marks are [[epoch, seq], ...]")
        if type(topic) is not str or type(name) is not str:
            raise malformed("a consumer_state names its topic and consumer")
        if settings is not None:
            settings = ConsumerCreate.decode(need_map(settings, "settings"))
            if (settings.topic, settings.name) != (topic, name):
                raise malformed("a consumer_state's settings are of another consumer")
        if (
            not _position(cursor)
            or type(pending) is not list
            or not all(
                type(p) is list and len(p) == 3 and _position(p[:2]) and type(p[2]) is int
                for p in pending
            )
        ):
            raise malformed("a consumer_state's cursor is [epoch, seq], pending [[e, s, n]...]")
        return ConsumerStateEntry(topic, name, settings, (cursor[0], cursor[1]), pending, marks)

    def body(self) -> list:
        return [
            [e.topic, e.name, None if e.settings is None else e.settings.args(), list(e.cursor),
             e.pending, *([] if e.marks is None else [e.marks])]
            for e in self.entries
        ]  # fmt: skip


def _position(value: Any) -> bool:
    return (
        type(value) is list
        and len(value) == 2
        and all(type(x) is int and 0 <= x < U64 for x in value)
    )
