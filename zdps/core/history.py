"""Per-topic message history: what owners and replicas keep for recovery.

A topic's owner stores every message it sequences; its next ``R`` nodes on the ring
(its replicas) store the copies the owner sends them. When the ring changes, every
holder hands its history to the nodes newly responsible for the topic, so a new owner
continues with the old history (docs/PROTOCOL.md §7.8).

Entries are ordered by ``(epoch, seq)``. That order is the order of sequencing because
an owner that holds history for a topic starts its new epoch above every epoch stored
(see ``Router``). Retention is by count and by age; a topic's retention is either the
cluster default or one set with ``zdps topic create``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from zdps.wire.api import HistoryQuery
from zdps.wire.data import Retention
from zdps.wire.limits import HISTORY_PAGE_BYTES


class Entry(NamedTuple):
    epoch: int
    seq: int
    payload: bytes
    stored: float  # local monotonic time at which it was stored


@dataclass(slots=True)
class TopicHistory:
    """The stored messages of one topic, oldest first."""

    retention: Retention
    entries: deque[Entry] = field(default_factory=deque)

    def add(self, epoch: int, seq: int, payload: bytes, stored: float) -> bool:
        """Store one message; False if it was already there."""
        entries = self.entries
        entry = Entry(epoch, seq, payload, stored)
        last = entries[-1] if entries else None
        if last is None or last.epoch < epoch or (last.epoch == epoch and last.seq < seq):
            entries.append(entry)  # the usual case: the newest message
        else:
            keys = [e[:2] for e in entries]
            at = bisect_right(keys, (epoch, seq))
            if at and keys[at - 1] == (epoch, seq):
                return False
            entries.insert(at, entry)
        if len(entries) > self.retention.count:
            return entries.popleft() is not entry  # an entry older than all is not kept
        return True

    def trim(self, now: float) -> None:
        """Drop what is over the count or older than the age."""
        entries, (count, age) = self.entries, self.retention
        while len(entries) > count:
            entries.popleft()
        limit = now - age
        while entries and entries[0].stored < limit:
            entries.popleft()

    def after(self, epoch: int, seq: int, limit: int) -> list[Entry]:
        """Up to ``limit`` entries that come after ``(epoch, seq)``."""
        found: list[Entry] = []
        for entry in reversed(self.entries):
            if (entry.epoch, entry.seq) <= (epoch, seq):
                break
            found.append(entry)
        found.reverse()
        return found[:limit]

    def last_epoch(self) -> int:
        return self.entries[-1].epoch if self.entries else 0


@dataclass(slots=True)
class HistoryStore:
    """Every topic's history held by one node, with the topics' retention settings."""

    default: Retention
    topics: dict[str, TopicHistory] = field(default_factory=dict)
    configured: dict[str, Retention] = field(default_factory=dict)

    def retention(self, topic: str) -> Retention:
        return self.configured.get(topic, self.default)

    def configure(self, topic: str, retention: Retention, now: float) -> None:
        """Set ``topic``'s own retention (``zdps topic create``)."""
        self.configured[topic] = retention
        history = self.topics.get(topic)
        if history is not None:
            history.retention = retention
            history.trim(now)

    def store(self, topic: str, epoch: int, seq: int, payload: bytes, now: float) -> bool:
        """Keep one message; False if it was already there or the topic keeps none."""
        history = self.topics.get(topic)
        if history is None:
            retention = self.retention(topic)
            if retention.count <= 0:
                return False
            history = self.topics[topic] = TopicHistory(retention)
        return history.add(epoch, seq, payload, now)

    def fetch(self, topic: str, epoch: int, seq: int, limit: int) -> list[Entry]:
        """Entries of ``topic`` after ``(epoch, seq)``, oldest first, at most ``limit``."""
        history = self.topics.get(topic)
        return history.after(epoch, seq, limit) if history else []

    def newest(self, topic: str) -> tuple[int, int]:
        """The ``(epoch, seq)`` of the newest stored entry, or (0, 0)."""
        history = self.topics.get(topic)
        return history.entries[-1][:2] if history and history.entries else (0, 0)

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
        """``topic``'s history as sent in a handoff: retention, then entries with their age."""
        history = self.topics.get(topic)
        entries = (
            [[e.epoch, e.seq, e.payload, now - e.stored] for e in history.entries]
            if history
            else []
        )
        return topic, self.configured.get(topic), entries

    def absorb(self, topic: str, retention: Retention | None, entries: list, now: float) -> int:
        """Merge a handoff from another holder of ``topic``; how many entries were new."""
        if retention is not None:
            self.configure(topic, retention, now)
        store, limit = self.store, self.retention(topic).age
        return sum(
            store(topic, epoch, seq, data, now - age)
            for epoch, seq, data, age in entries
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
        for entry in self.fetch(query.topic, after[0], after[1], limit + 1):
            if until is not None and (entry.epoch, entry.seq) >= until:
                break
            if len(entries) == limit or (
                entries and size + len(entry.payload) > HISTORY_PAGE_BYTES
            ):
                more = True
                break
            entries.append([entry.epoch, entry.seq, entry.payload])
            size += len(entry.payload)
        return entries, more

    def held(self) -> list[str]:
        """Topics with stored history or a retention of their own."""
        return list(self.topics.keys() | self.configured.keys())

    def __len__(self) -> int:
        return sum(len(h.entries) for h in self.topics.values())
