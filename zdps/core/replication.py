"""Replication bookkeeping: who copies a topic's history, and acks that wait for copies.

Rules (docs/PROTOCOL.md §7.8):

* A topic's *placement* is its owner followed by its next ``R`` distinct nodes on the
  ring, the replicas. When the owner leaves, the first replica becomes the owner and
  already holds the history.
* A replica confirms what it stored with ``stored [topic, epoch, seq]`` (the newest entry
  per topic, once per turn), and only while an epoch's copies arrive without a gap. A
  publish at ack level ``replicated`` is acknowledged once every replica it was sent to
  confirmed it, and refused if one of them goes away first.
* When the ring changes, each holder of a topic's history sends it to the nodes newly in
  the topic's placement (``handoff``) and forgets its copy if it is no longer in it.

This module only keeps the books; ``sequencing.py`` and ``handoff.py`` send what it decides.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from zdps.core.acks import Route
from zdps.core.history import HistoryStore
from zdps.core.ring import HashRing
from zdps.wire.data import StoredEntry

MAX_TRACKED = 1_000_000  # (owner, topic) pairs whose last copy a replica remembers


@dataclass(slots=True)
class Waiting:
    """A batch acknowledged once ``replicas`` all confirmed ``(epoch, seq + n - 1)``."""

    epoch: int
    seq: int  # of its first message
    n: int
    route: Route
    nodes: int
    subscribers: int
    replicas: set[str]
    deadline: float


@dataclass(slots=True)
class Replication:
    """Replica placement, acks waiting for replicas, confirmations owed to owners."""

    node: str
    ring: HashRing
    history: HistoryStore
    factor: int = 1  # R: replicas per topic besides the owner
    _waiting: dict[str, deque[Waiting]] = field(default_factory=dict)
    _owed: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)
    _received: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    _broken: dict[tuple[str, str], int] = field(default_factory=dict)  # epoch with a gap
    _gaps: dict[str, list[StoredEntry]] = field(default_factory=dict)  # gap notices owed
    _urgent: set[str] = field(default_factory=set)  # owners a replicated publish waits on

    def replicas(self, topic: str) -> list[str]:
        """The replicas of ``topic`` (the owner excluded), nearest first."""
        return self.ring.successors(topic, self.factor + 1)[1:]

    # ------------------------------------------------------------------ owner side

    def wait(self, topic: str, waiting: Waiting) -> None:
        self._waiting.setdefault(topic, deque()).append(waiting)

    def confirmed(self, replica: str, topic: str, epoch: int, seq: int) -> list[Waiting]:
        """``replica`` stored ``topic``'s ``epoch`` up to ``seq``: the publishes now acked.

        A confirmation says nothing of other epochs. Publishes are acknowledged as soon
        as all their replicas confirmed, not in order: one waiting on a replica that
        no longer answers (until it times out) must not hold up the others.
        """
        queue = self._waiting.get(topic)
        if not queue:
            return []
        for waiting in queue:  # in sequencing order: epochs only grow along the queue
            last = waiting.seq + waiting.n - 1
            if waiting.epoch > epoch or (waiting.epoch == epoch and last > seq):
                break
            if waiting.epoch == epoch:
                waiting.replicas.discard(replica)
        done = []
        while queue and not queue[0].replicas:
            done.append(queue.popleft())
        if queue and any(not w.replicas for w in queue):  # the oldest one is stuck
            done += [w for w in queue if not w.replicas]
            queue = self._waiting[topic] = deque(w for w in queue if w.replicas)
        if not queue:
            del self._waiting[topic]
        return done

    def lost(self, replica: str) -> list[Waiting]:
        """``replica`` went away: the publishes that waited on it can no longer be confirmed."""
        return self._take(lambda waiting: replica in waiting.replicas)

    def missed(self, replica: str, topic: str, epoch: int) -> list[Waiting]:
        """``replica`` missed a copy of ``topic``'s ``epoch``: its publishes waiting on that
        replica can no longer be confirmed."""
        if topic not in self._waiting:
            return []
        return self._take(lambda w: w.epoch == epoch and replica in w.replicas, topic)

    def expired(self, now: float) -> list[Waiting]:
        return self._take(lambda waiting: waiting.deadline <= now)

    def _take(self, failed, only: str | None = None) -> list[Waiting]:
        taken: list[Waiting] = []
        queues = [(only, self._waiting[only])] if only else list(self._waiting.items())
        for topic, queue in queues:
            keep = deque(w for w in queue if not failed(w))
            if len(keep) != len(queue):
                taken += [w for w in queue if failed(w)]
                if keep:
                    self._waiting[topic] = keep
                else:
                    del self._waiting[topic]
        return taken

    @property
    def pending(self) -> int:
        """Publishes (messages, not batches) waiting for their replicas."""
        return sum(waiting.n for queue in self._waiting.values() for waiting in queue)

    # ------------------------------------------------------------------ replica side

    def stored(
        self, owner: str, topic: str, epoch: int, seq: int, n: int = 1, urgent: bool = True
    ) -> None:
        """We stored a batch of copies from ``owner``: confirm the newest one this turn if
        ``urgent`` (a replicated publish waits on it), else at the next tick.

        A confirmation covers everything before it, so it is only sent while the copies
        of an epoch arrive without a gap: copies can be lost (a link cut, or dropped
        while we held the owner for dead). At a gap the owner is told instead (a
        ``stored`` entry with seq 0): it refuses that epoch's waiting ``replicated``
        publishes and starts a new epoch, which we confirm again.

        An owner's new epoch starts at seq 1, so a replica that already had copies of
        the topic from that owner takes a later first seq of a new epoch as a gap too
        (its first copy was lost). A node that is new to the placement, and so has
        none, may start anywhere: the owner waits on it only for what it sent it.
        """
        key = (owner, topic)
        last = self._received.get(key)
        if len(self._received) > MAX_TRACKED:
            self._received.clear()
        self._received[key] = (epoch, seq + n - 1)
        if last is not None and seq != (last[1] + 1 if last[0] == epoch else 1):
            if self._broken.get(key) != epoch:
                self._gaps.setdefault(owner, []).append(StoredEntry(topic, epoch, 0))
                self._urgent.add(owner)
            self._broken[key] = epoch
        if self._broken.get(key) == epoch:
            return
        owed = self._owed.setdefault(owner, {})
        if (epoch, seq + n - 1) > owed.get(topic, (0, 0)):
            owed[topic] = (epoch, seq + n - 1)
        if urgent:
            self._urgent.add(owner)

    def confirmations(self, all_: bool = True) -> dict[str, list[StoredEntry]]:
        """``stored`` entries owed (confirmations, then gaps), now sent: to every owner, or
        (``all_`` False) only to those a replicated publish or a gap notice waits on."""
        if not all_ and not self._urgent:
            return {}  # the end of most turns: nothing waits
        owners = self._owed.keys() | self._gaps.keys()
        if not all_:
            owners &= self._urgent
        self._urgent.clear()
        return {
            owner: [StoredEntry(topic, *last) for topic, last in self._owed.pop(owner, {}).items()]
            + self._gaps.pop(owner, [])
            for owner in owners
        }

    # ------------------------------------------------------------------ ring changes

    def handoffs(self, old_nodes: frozenset[str]) -> tuple[dict[str, list[str]], list[str]]:
        """After a ring change: topics to send to each node newly responsible, topics to drop.

        ``old_nodes`` is the ring membership before the change; placements are compared
        between the two rings for every topic this node holds, so the old ring is made
        (from the new one) only if it holds any.
        """
        held = self.history.held()
        if not held:
            return {}, []
        old_ring = self.ring.with_nodes(old_nodes)
        size = self.factor + 1
        sends: dict[str, list[str]] = {}
        drops: list[str] = []
        for topic in held:
            new = self.ring.successors(topic, size)
            old = set(old_ring.successors(topic, size))
            for node in new:
                if node not in old and node != self.node:
                    sends.setdefault(node, []).append(topic)
            if self.node not in new:
                drops.append(topic)
        for topic in drops:  # if we are placed again later, we start as new to it
            for key in [k for k in self._received if k[1] == topic]:
                del self._received[key]
                self._broken.pop(key, None)
        return sends, drops
