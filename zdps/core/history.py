"""Per-topic message history: what owners and replicas keep for recovery.

A topic's owner stores every message it sequences; its next ``R`` nodes on the ring
(its replicas) store the copies the owner sends them. When the ring changes, every
holder hands its history to the nodes newly responsible for the topic, so a new owner
continues with the old history (docs/PROTOCOL.md §7.8).

Messages are stored in the batches the owner sequenced (one entry per batch, whose
payloads stay packed until read), ordered by ``(epoch, seq)``. That order is the
order of sequencing because an owner that holds history for a topic starts its new
epoch above every epoch stored (see ``Sequencer``). Retention is by count and by
age, exact to the message; a topic's retention is either the cluster default or one
set with ``zdps topic create``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from zdps.wire.api import HistoryQuery
from zdps.wire.batches import pack_batch, unpack_batch
from zdps.wire.data import Retention
from zdps.wire.limits import HISTORY_PAGE_BYTES

# Messages over its retention that a topic's durable consumers may hold in its history
# (consumers.py): beyond, the oldest go anyway, and a consumer counts them as lost.
HOLD_CAP = 1_000_000


def _last(entry: Entry) -> tuple[int, int]:
    return entry.last


def _start(entry: Entry) -> tuple[int, int]:
    return entry.epoch, entry.seq


class Entry(NamedTuple):
    """A batch as stored: messages ``seq``..``seq + n - 1`` of ``epoch``."""

    epoch: int
    seq: int
    n: int
    batch: bytes  # the payloads (zdps/wire/batches.py), unpacked only when read
    stored: float  # local monotonic time at which it was stored

    @property
    def last(self) -> tuple[int, int]:
        return self.epoch, self.seq + self.n - 1


@dataclass(slots=True)
class TopicHistory:
    """The stored messages of one topic, oldest first, in batches as they were sequenced.

    Retention is exact to the message: trimming by count may cut into the oldest batch,
    whose first ``skip`` messages are then no longer held (nor served, nor counted).
    """

    retention: Retention
    entries: deque[Entry] = field(default_factory=deque)
    size: int = 0  # messages held
    skip: int = 0  # messages of entries[0] trimmed away
    # (epoch, seq) -> n of every entry: a batch held already (two holders hand over the
    # same history) is found without a look at the others
    _starts: dict[tuple[int, int], int] = field(default_factory=dict)
    hold: tuple[int, int] | None = None  # durable consumers need every message after it
    # Messages merged in at a position held with another payload: two owners opened the
    # same epoch (a split whose sides started it in the same millisecond). The first
    # stays; the other is lost here, and counted.
    clashes: int = 0

    def _held(self) -> bool:
        """The oldest batch must stay: a consumer needs some of it, within HOLD_CAP."""
        hold = self.hold
        return (
            hold is not None
            and self.entries[0].last > hold
            and self.size <= self.retention.count + HOLD_CAP
        )

    def add(self, epoch: int, seq: int, n: int, batch: bytes, stored: float) -> int:
        """Store a batch; how many of its messages are new here and still held."""
        entries = self.entries
        if not entries or entries[-1].last < (epoch, seq):
            entries.append(Entry(epoch, seq, n, batch, stored))  # the usual case: the newest
            self._starts[epoch, seq] = n
            self.size += n
            self._trim_count()
            return min(n, self.size)
        if self._starts.get((epoch, seq)) == n:  # this very batch is held, or trimmed
            at = bisect_right(entries, (epoch, seq), key=_start) - 1  # type: ignore[arg-type]
            if at >= 0 and _start(entries[at]) == (epoch, seq) and entries[at].batch != batch:
                self.clashes += n
            return 0
        return self._merge(epoch, seq, unpack_batch(batch, n), stored)

    def _merge(self, epoch: int, seq: int, payloads: list[bytes], stored: float) -> int:
        """Insert, one by one, the messages not held yet (a handoff, or late copies)."""
        self._materialize_head()
        entries = self.entries
        starts = [(e.epoch, e.seq) for e in entries]
        added, held_payloads = [], {}  # a held batch's payloads, unpacked once, by its start
        for offset, payload in enumerate(payloads):
            key = (epoch, seq + offset)
            at = bisect_right(starts, key)
            if at and entries[at - 1].epoch == epoch and key[1] <= entries[at - 1].last[1]:
                held = entries[at - 1]
                if (held.epoch, held.seq) not in held_payloads:
                    held_payloads[held.epoch, held.seq] = unpack_batch(held.batch, held.n)
                self.clashes += held_payloads[held.epoch, held.seq][key[1] - held.seq] != payload
                continue  # held already
            entries.insert(at, Entry(epoch, key[1], 1, pack_batch([payload]), stored))
            self._starts[key] = 1
            starts.insert(at, key)
            added.append(key)
        self.size += len(added)
        self._trim_count()
        first = self.first()
        return sum(1 for key in added if first is not None and key >= first)

    def _materialize_head(self) -> None:
        """Make the trimmed part of the oldest batch go for good (before an insertion)."""
        if self.skip:
            head = self.entries[0]
            payloads = unpack_batch(head.batch, head.n)[self.skip :]
            self.entries[0] = Entry(
                head.epoch, head.seq + self.skip, len(payloads), pack_batch(payloads), head.stored
            )
            del self._starts[head.epoch, head.seq]
            self._starts[head.epoch, head.seq + self.skip] = len(payloads)
            self.skip = 0

    def _trim_count(self) -> None:
        entries, count = self.entries, self.retention.count
        while self.size > count and not self._held():
            excess, held = self.size - count, entries[0].n - self.skip
            if excess >= held:
                gone = entries.popleft()
                del self._starts[gone.epoch, gone.seq]
                self.size -= held
                self.skip = 0
            else:
                self.skip += excess
                self.size -= excess

    def trim(self, now: float) -> None:
        """Drop what is over the count or older than the age."""
        self._trim_count()
        entries, limit = self.entries, now - self.retention.age
        while entries and entries[0].stored < limit and not self._held():
            gone = entries.popleft()
            del self._starts[gone.epoch, gone.seq]
            self.size -= gone.n - self.skip
            self.skip = 0

    def first(self) -> tuple[int, int] | None:
        """The ``(epoch, seq)`` of the oldest message held."""
        if not self.entries:
            return None
        head = self.entries[0]
        return head.epoch, head.seq + self.skip

    def after(self, epoch: int, seq: int, limit: int) -> list[tuple[int, int, bytes]]:
        """Up to ``limit`` messages that come after ``(epoch, seq)``, as
        ``(epoch, seq, payload)``, oldest first."""
        key = (epoch, seq)
        if limit <= 0:
            return []
        entries = self.entries
        # The first batch with a message after ``key``: a binary search, since a reader
        # far behind the newest (a durable consumer) must not cost a walk through all.
        at = bisect_right(entries, key, key=_last)
        found: list[tuple[int, int, bytes]] = []
        for index in range(at, len(entries)):
            entry = entries[index]
            first, start = entry.seq, self.skip if index == 0 else 0
            if entry.epoch == epoch:  # of a later epoch, all of it comes after ``key``
                start = max(start, seq + 1 - first)
            stop = min(entry.n, start + limit - len(found))
            payloads = unpack_batch(entry.batch, entry.n)
            found += [(entry.epoch, first + i, payloads[i]) for i in range(start, stop)]
            if len(found) == limit:
                break
        return found

    def last_epoch(self) -> int:
        return self.entries[-1].epoch if self.entries else 0

    def exported(self, now: float) -> list[list]:
        """Every batch held as ``[epoch, seq, n, batch, age]``, as a handoff sends it."""
        self._materialize_head()
        return [[e.epoch, e.seq, e.n, e.batch, now - e.stored] for e in self.entries]


@dataclass(slots=True)
class HistoryStore:
    """Every topic's history held by one node, with the topics' retention settings."""

    default: Retention
    topics: dict[str, TopicHistory] = field(default_factory=dict)
    configured: dict[str, Retention] = field(default_factory=dict)
    holds: dict[str, tuple[int, int]] = field(default_factory=dict)  # consumers' floors

    def hold(self, topic: str, floor: tuple[int, int] | None) -> None:
        """Keep every message of ``topic`` after ``floor`` (None: no consumer needs any)."""
        if floor is None:
            self.holds.pop(topic, None)
        else:
            self.holds[topic] = floor
        history = self.topics.get(topic)
        if history is not None:
            history.hold = floor
            history._trim_count()  # what the consumers had goes now, as retention says

    def retention(self, topic: str) -> Retention:
        return self.configured.get(topic, self.default)

    def configure(self, topic: str, retention: Retention, now: float) -> None:
        """Set ``topic``'s own retention (``zdps topic create``)."""
        self.configured[topic] = retention
        history = self.topics.get(topic)
        if history is not None:
            history.retention = retention
            history.trim(now)

    def store(self, topic: str, epoch: int, seq: int, n: int, batch: bytes, now: float) -> int:
        """Keep a batch of ``n`` messages from ``seq`` on; how many of them are new and
        held (0 if the topic keeps none)."""
        history = self.topics.get(topic)
        if history is None:
            retention = self.retention(topic)
            if retention.count <= 0:
                return 0
            history = self.topics[topic] = TopicHistory(retention, hold=self.holds.get(topic))
        return history.add(epoch, seq, n, batch, now)

    def fetch(self, topic: str, epoch: int, seq: int, limit: int) -> list[tuple[int, int, bytes]]:
        """Messages of ``topic`` after ``(epoch, seq)``, oldest first, at most ``limit``."""
        history = self.topics.get(topic)
        return history.after(epoch, seq, limit) if history else []

    def newest(self, topic: str) -> tuple[int, int]:
        """The ``(epoch, seq)`` of the newest stored message, or (0, 0)."""
        history = self.topics.get(topic)
        return history.entries[-1].last if history and history.entries else (0, 0)

    def epochs(self, topic: str) -> dict[int, int]:
        """The newest seq held of each epoch of ``topic``."""
        history = self.topics.get(topic)
        return {e.epoch: e.last[1] for e in history.entries} if history else {}

    def last_epoch(self, topic: str) -> int:
        history = self.topics.get(topic)
        return history.last_epoch() if history else 0

    def drop(self, topic: str) -> None:
        """Forget ``topic`` entirely (it was deleted)."""
        self.topics.pop(topic, None)
        self.configured.pop(topic, None)

    def expire(self, now: float) -> None:
        """Apply retention by age; forget topics left empty."""
        for topic, history in list(self.topics.items()):
            history.trim(now)
            if not history.entries:
                del self.topics[topic]

    def export(self, topic: str, now: float) -> tuple[str, Retention | None, list]:
        """``topic``'s history as sent in a handoff: retention, then batches with their age."""
        history = self.topics.get(topic)
        return topic, self.configured.get(topic), history.exported(now) if history else []

    def absorb(self, topic: str, retention: Retention | None, entries: list, now: float) -> int:
        """Merge a handoff from another holder of ``topic``; how many messages were new."""
        if retention is not None:
            self.configure(topic, retention, now)
        store, limit = self.store, self.retention(topic).age
        return sum(
            store(topic, epoch, seq, n, batch, now - age)
            for epoch, seq, n, batch, age in entries
            if age <= limit  # what expired in transit is not kept
        )

    def page(self, query: HistoryQuery) -> tuple[list[list], bool]:
        """One page of a history request: ``[epoch, seq, payload]`` entries, and whether
        the range goes on. At most ``query.limit`` entries and about HISTORY_PAGE_BYTES
        of payload (at least one entry).
        """
        if query.since is not None:
            newest = self.newest(query.topic)[0]
            after = (newest, query.since - 1) if query.since else (0, 0)
        else:
            after = query.after
        until, limit = query.until, query.limit
        entries: list[list[Any]] = []
        size, more = 0, False
        for epoch, seq, payload in self.fetch(query.topic, after[0], after[1], limit + 1):
            if until is not None and (epoch, seq) >= until:
                break
            if len(entries) == limit or (entries and size + len(payload) > HISTORY_PAGE_BYTES):
                more = True
                break
            entries.append([epoch, seq, payload])
            size += len(payload)
        return entries, more

    def held(self) -> list[str]:
        """Topics with stored history or a retention of their own."""
        return list(self.topics.keys() | self.configured.keys())

    def __len__(self) -> int:
        return sum(h.size for h in self.topics.values())

    def clashes(self) -> int:
        """Messages lost here to another owner's at the same position (``TopicHistory``)."""
        return sum(h.clashes for h in self.topics.values())
