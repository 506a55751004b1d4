"""The data path between nodes: routing, copies, replication, acks, flow control.

Messages travel in batches (``batches.py``): a ``fwd``, ``fanout`` or ``store`` entry
carries ``n`` consecutive messages of one topic as one blob that no hop unpacks, the
owner gives them the seqs ``seq``..``seq + n - 1`` at once, and one ack entry answers
them all.

Every kind here but ``consumed`` is an ``EntryList``: a list of entries, decoded entry by
entry, so one bad entry is skipped alone and, when it names an ``ack_id`` in its own
field, refused under that id (docs/PROTOCOL.md §3.3, §7). Each entry's fields are a
NamedTuple, in wire order, from which its check and its spec line are made
(``fields.py``).

The four kinds that carry every message (fwd, fanout, store, ack) are checked in
place: their decoded entries stay the arrays msgpack made, in that field order, and
are unpacked by position. An object per entry at every hop would double what the
data path allocates, and the garbage collector's time grows with it (measured:
about 15 % of the three-node path's CPU). The other kinds decode into their
NamedTuples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from zdps.wire.batches import MAX_BATCH, check_batch
from zdps.wire.codec import EntryList, NodeMessage, need_int
from zdps.wire.errors import malformed
from zdps.wire.limits import MAX_HISTORY, MAX_HISTORY_TTL, MAX_HOPS, U64

# Publish ack levels: the optional last field of a client's publish entry and of fwd.
LEVEL_NONE = 0
LEVEL_OWNER = 1
LEVEL_REPLICATED = 2
ACK_LEVELS = {"none": LEVEL_NONE, "owner": LEVEL_OWNER, "replicated": LEVEL_REPLICATED}
_HOPS = (("hops", 0, MAX_HOPS + 1),)
_N = ("n", 1, MAX_BATCH + 1)
_SEQ = ("seq", 1, U64 - MAX_BATCH)  # a batch's seqs, seq..seq + n - 1, stay below 2**64


class Retention(NamedTuple):
    """How much history a topic keeps: at most ``count`` messages, none older than ``age`` s."""

    count: int
    age: float


def decode_retention(count: Any, age: Any) -> Retention:
    if type(count) is not int or not 0 <= count <= MAX_HISTORY:
        raise malformed(f"history is 0 to {MAX_HISTORY} messages")
    if type(age) not in (int, float) or not 0 < age <= MAX_HISTORY_TTL:
        raise malformed(f"ttl is over 0 and at most {MAX_HISTORY_TTL} s")
    return Retention(count, float(age))


# ---------------------------------------------------------------- towards the owner


class ForwardEntry(NamedTuple):
    topic: str
    n: int  # messages in the batch
    batch: bytes  # their payloads (batches.py), passed on unopened
    ack_id: int  # 0: no ack wanted; else names the batch at the sender
    hops: int  # links crossed so far, at most MAX_HOPS
    level: int  # LEVEL_OWNER or LEVEL_REPLICATED
    lazy: bool = False  # nobody waits on its ack alone: it may be paced (§7.4)


@dataclass(frozen=True, slots=True)
class Forward(EntryList):
    """Batches of publishes on their way to the topic's owner (§7.1)."""

    KIND = "fwd"
    DATA = True
    ACK_FIELD = 3
    COUNT_FIELD = 1
    ENTRY = ForwardEntry
    RANGES = (_N, *_HOPS)
    CHOICES = (("level", (LEVEL_OWNER, LEVEL_REPLICATED)),)
    IN_PLACE = True


class CloseEntry(NamedTuple):
    topic: str
    ack_id: int
    hops: int


@dataclass(frozen=True, slots=True)
class Close(EntryList):
    """Topic deletions on their way to the owner (§7.5)."""

    KIND = "close"
    DATA = True
    ACK_FIELD = 1
    ENTRY = CloseEntry
    RANGES = _HOPS


class ConfigureEntry(NamedTuple):
    topic: str
    retention: Retention  # two fields on the wire: count and age
    ack_id: int
    hops: int


@dataclass(frozen=True, slots=True)
class Configure(EntryList):
    """A topic's retention (``create``) on its way to the owner (§7.8)."""

    KIND = "configure"
    DATA = True
    ACK_FIELD = 3
    SHAPE = "[topic str, count int, age float, ack_id int, hops int]"

    @classmethod
    def entry(cls, raw: Any) -> ConfigureEntry:
        if (
            type(raw) is list
            and len(raw) == 5
            and type(raw[0]) is str
            and type(raw[3]) is int
            and 0 <= raw[3] < U64
            and type(raw[4]) is int
            and 0 <= raw[4] <= MAX_HOPS
        ):
            return ConfigureEntry(raw[0], decode_retention(raw[1], raw[2]), raw[3], raw[4])
        raise malformed(f"configure entries are {cls.SHAPE}")

    def body(self) -> list:
        return [[e.topic, *e.retention, e.ack_id, e.hops] for e in self.entries]


# ---------------------------------------------------------------- from the owner


class FanoutEntry(NamedTuple):
    topic: str
    seq: int  # of the first message; the others follow one by one
    epoch: int
    n: int
    batch: bytes


@dataclass(frozen=True, slots=True)
class Fanout(EntryList):
    """Sequenced copies, one per interested node: deliver in the order received (§7.3)."""

    KIND = "fanout"
    DATA = True
    COUNT_FIELD = 3
    ENTRY = FanoutEntry
    RANGES = (_SEQ, _N)
    IN_PLACE = True


class ClosedEntry(NamedTuple):
    topic: str
    seq: int
    epoch: int
    deliver: bool = True  # False: a replica without interest only drops the history


@dataclass(frozen=True, slots=True)
class Closed(EntryList):
    """A topic's final message: drop its history, deliver ``closed`` if interested (§7.5)."""

    KIND = "closed"
    DATA = True
    ENTRY = ClosedEntry

    def body(self) -> list:
        """``deliver`` is only sent when False, as nodes before replication did."""
        return [e if not e[3] else e[:3] for e in self.entries]


class StoreEntry(NamedTuple):
    topic: str
    seq: int  # of the first message
    epoch: int
    n: int
    batch: bytes
    deliver: bool  # the replica has interest: this is also its delivery copy
    confirm: bool = False  # a replicated publish waits on it: confirm it at once


@dataclass(frozen=True, slots=True)
class Store(EntryList):
    """Copies for a replica to keep in the topic's history (§7.8)."""

    KIND = "store"
    DATA = True
    COUNT_FIELD = 3
    ENTRY = StoreEntry
    RANGES = (_SEQ, _N)
    IN_PLACE = True


class QueuedEntry(NamedTuple):
    topic: str
    queue: bytes  # the queue group's overlay key (zdps.topics.queue_key)
    seq: int  # of the first message
    epoch: int
    n: int
    batch: bytes


@dataclass(frozen=True, slots=True)
class Queued(EntryList):
    """Sequenced copies for one member of a queue group at the receiver (§7.3): an
    optional kind, sent only to nodes that announce a member of that queue group."""

    KIND = "queued"
    DATA = True
    COUNT_FIELD = 4
    ENTRY = QueuedEntry
    RANGES = (_SEQ, _N)
    IN_PLACE = True


class StoredEntry(NamedTuple):
    topic: str
    epoch: int
    seq: int  # the newest stored; 0: a copy of this epoch went missing


@dataclass(frozen=True, slots=True)
class Stored(EntryList):
    """A replica's confirmations to the owner, one per topic per turn (§7.8)."""

    KIND = "stored"
    ENTRY = StoredEntry


class HandoffEntry(NamedTuple):
    topic: str
    retention: Retention | None  # the topic's own retention, None for the default
    stored: list  # [epoch, seq, n, batch, age] oldest first; age in seconds


@dataclass(frozen=True, slots=True)
class Handoff(EntryList):
    """A topic's history for a node newly in its placement, or a retention change (§7.8)."""

    KIND = "handoff"
    SHAPE = (
        "[topic str, [count int, age float] or nil,"
        " [[epoch int, seq int, n int, batch bin, age float], ...]]"
    )

    @classmethod
    def entry(cls, raw: Any) -> HandoffEntry:
        if type(raw) is not list or len(raw) != 3 or type(raw[0]) is not str:
            raise malformed(f"handoff entries are {cls.SHAPE}")
        topic, retention, stored = raw
        if retention is not None:
            if type(retention) is not list or len(retention) != 2:
                raise malformed("a retention is [count, age]")
            retention = decode_retention(*retention)
        if type(stored) is not list or not all(
            type(e) is list
            and len(e) == 5
            and type(e[0]) is int
            and type(e[1]) is int
            and type(e[2]) is int
            and 0 <= e[0] < U64
            and 0 < e[1] < U64 - MAX_BATCH
            and 0 < e[2] <= MAX_BATCH
            and type(e[3]) is bytes
            and type(e[4]) in (int, float)
            and e[4] >= 0
            for e in stored
        ):
            raise malformed("handoff entries hold [epoch, seq, n, batch, age]")
        for _epoch, _seq, n, batch, _age in stored:
            check_batch(batch, n)  # kept as history: it must unpack when handed out
        return HandoffEntry(topic, retention, stored)


# ---------------------------------------------------------------- back along the route


class AckRun(NamedTuple):
    """The ``n`` messages of the batch ``ack_id`` got ``seq``..``seq + n - 1`` (§7.4).

    To a client, ``ack_id`` is the ref of the first message and the others' refs follow.
    """

    ack_id: int
    seq: int
    nodes: int
    subscribers: int
    n: int


@dataclass(frozen=True, slots=True)
class Ack(EntryList):
    """Acknowledgements, one entry per batch."""

    KIND = "ack"
    ENTRY = AckRun
    RANGES = (("seq", 0, U64 - MAX_BATCH), _N)  # seq 0: a retention's ack
    IN_PLACE = True


class NackEntry(NamedTuple):
    ack_id: int
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Nack(EntryList):
    """Refusals, relayed back along each publish's route (§7.4)."""

    KIND = "nack"
    ENTRY = NackEntry


@dataclass(frozen=True, slots=True)
class Consumed(NodeMessage):
    """How many of the receiver's data entries the sender processed (§7.7)."""

    KIND = "consumed"
    SHAPE = "count int"
    count: int

    @classmethod
    def decode(cls, body: Any) -> Consumed:
        return cls(need_int(body, "consumed's count"))

    def body(self) -> int:
        return self.count
