"""Sequencing: what a topic's owner does with a publish (docs/PROTOCOL.md §7.2-§7.5, §7.8).

* The owner stamps ``(epoch, seq)``: seq counts 1, 2, 3 ... per topic within an epoch,
  and a new epoch starts whenever the owner (re)starts sequencing a topic. Epochs a
  node hands out only grow, and start above every epoch in the topic's history, so
  ``(epoch, seq)`` keeps growing across owner changes.
* A batch of ``n`` publishes gets ``n`` consecutive seqs at once and travels on as one
  unit: one history entry, one copy per node, one acknowledgement (one ``Waiting``
  for ``replicated``).
* It stores the message in the topic's history, sends exactly one copy to each
  interested node (``interest.py``): a ``fanout``, or to a replica a ``store`` that
  doubles as its delivery copy; and delivers locally when it has members itself.
* Ack levels: ``owner`` acks once sequenced; ``replicated`` once every replica it was
  sent to confirmed it stored it (``stored``). Refused with ``no_replica`` before
  sequencing when no replica is reachable, with ``replica_lost`` when a replica goes
  away or misses a copy first (its fate is then unknown), with ``timeout`` after
  ``ack_timeout``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from zdps.core.acks import Route, Routes
from zdps.core.consumers import Consumers
from zdps.core.flow import FlowControl
from zdps.core.history import HistoryStore
from zdps.core.interest import InterestCache
from zdps.core.outbox import Outbox
from zdps.core.part import Part
from zdps.core.queues import QueueGroups
from zdps.core.replication import Replication, Waiting
from zdps.core.ring import HashRing
from zdps.wire.data import (
    LEVEL_REPLICATED,
    Closed,
    ClosedEntry,
    Fanout,
    Handoff,
    HandoffEntry,
    Retention,
    Store,
    Stored,
)
from zdps.wire.errors import E_NO_REPLICA, E_REPLICA_LOST, E_TIMEOUT

# An epoch is ``millisecond * EPOCH_TAGS + tag``: the tag, from the owner's name, keeps
# the epochs two owners open in the same millisecond apart (the two sides of a netsplit,
# both above the same history). 1024 tags keep epochs below 2**53 (JSON's exact
# integers, for the gateway's clients) for two centuries of Unix milliseconds.
EPOCH_TAGS = 1024


def epoch_tag(node: str) -> int:
    """The low part of every epoch ``node`` opens: 0 to EPOCH_TAGS - 1."""
    digest = hashlib.blake2b(node.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % EPOCH_TAGS


class Sequencer:
    """Per-topic (epoch, seq) counters of the topics this node sequences."""

    def __init__(
        self,
        epoch_base_ms: int,
        started: float,
        floor: Callable[[str], int] = lambda _: 0,
        node: str = "",
    ) -> None:
        self._base = epoch_base_ms
        self._started = started
        self._tag = epoch_tag(node)
        self._last_ms = -1  # the millisecond part of the newest epoch handed out
        self._floor = floor  # the newest epoch already in the topic's history
        self._topics: dict[str, list[int]] = {}  # topic -> [epoch, seq, last used]

    def stamp(self, topic: str, now: float, n: int = 1) -> tuple[int, int]:
        """The (epoch, seq) of the next message on ``topic``; the ``n`` messages of a
        batch get that seq and the ``n - 1`` after it.

        A new epoch is above every epoch this node handed out and every epoch in the
        topic's history, so ``(epoch, seq)`` keeps growing across owner changes; it ends
        in this node's tag, so no other owner opens the same one.
        """
        state = self._topics.get(topic)
        if state is None:
            ms = max(
                self._base + int((now - self._started) * 1000),
                self._last_ms + 1,
                self._floor(topic) // EPOCH_TAGS + 1,
            )
            self._last_ms = ms
            state = self._topics[topic] = [ms * EPOCH_TAGS + self._tag, 0, now]
        seq = state[1] + 1
        state[1] += n
        state[2] = now
        return state[0], seq

    def forget_idle(self, now: float, idle: float) -> None:
        """Forget topics unused for ``idle`` seconds: memory follows the active topics.

        The next message on such a topic starts a new epoch, which subscribers already
        treat as a new sequence.
        """
        limit = now - idle
        self._topics = {t: s for t, s in self._topics.items() if s[2] >= limit}

    def forget(self, topic: str) -> None:
        """The next message on ``topic`` starts a new epoch."""
        self._topics.pop(topic, None)

    def retain(self, keep: Callable[[str], bool]) -> None:
        """Forget every topic for which ``keep`` is false (ownership moved away)."""
        self._topics = {t: s for t, s in self._topics.items() if keep(t)}

    def epoch(self, topic: str) -> int:
        """The epoch ``topic`` is being sequenced in, or 0."""
        state = self._topics.get(topic)
        return state[0] if state else 0

    def __len__(self) -> int:
        return len(self._topics)


@dataclass(slots=True)
class Owner(Part):
    """The owner's side of the publish path: stamp, store, copy, acknowledge."""

    node: str
    ring: HashRing
    sequencer: Sequencer
    history: HistoryStore
    replication: Replication
    interest: InterestCache
    routes: Routes
    flow: FlowControl
    counters: dict[str, int]
    ack_timeout: float = 10.0
    idle_topic_ttl: float = 600.0
    peer_fanout: dict[str, int] = field(default_factory=dict)  # copies sent, per peer
    queues: QueueGroups | None = None  # where queue groups' copies go (queues.py)
    consumers: Consumers | None = None  # durable consumers fed from history (consumers.py)
    _next_idle_sweep: float = 0.0

    def sequence(
        self,
        topic: str,
        n: int,
        batch: bytes,
        route: Route | None,
        level: int,
        now: float,
        out: Outbox,
        lazy: bool = False,
    ) -> None:
        """Sequence a batch of ``n`` publishes of a topic we own: one seq range, one
        history entry, one copy per interested node, one acknowledgement (paced if
        ``lazy``; one at the replicated level waits for the replicas anyway)."""
        interest = self.interest.of(topic)
        replicated = level == LEVEL_REPLICATED and route is not None
        if replicated and not interest.replicas and self.replication.factor:
            self.routes.refuse(out, route, E_NO_REPLICA, "no replica is reachable to store it", n)
            return
        epoch, seq = self.sequencer.stamp(topic, now, n)
        self.history.store(topic, epoch, seq, n, batch, now)
        fanout, inflight = self.peer_fanout, self.flow.inflight
        if interest.endpoints:
            entry = (topic, seq, epoch, n, batch)  # a FanoutEntry, as a plain tuple (data.py)
            append = out.entry
            for endpoint in interest.endpoints:
                append(endpoint, Fanout, entry)
            for node in interest.nodes:
                fanout[node] = fanout.get(node, 0) + n
                inflight[node] = inflight.get(node, 0) + n
            self.counters["fanout_sent"] += n * len(interest.endpoints)
        copy = (topic, seq, epoch, n, batch)
        for node, endpoint, deliver in interest.replicas:
            # A StoreEntry; ``confirm`` (a replicated publish waits) is sent only when set.
            if replicated:
                out.entry(endpoint, Store, (*copy, deliver, True))
            elif deliver:
                out.entry(endpoint, Store, (*copy, deliver))
            else:  # nobody waits on it: it may be held a moment (copy_pacing.py)
                out.lazy_entry(endpoint, Store, (*copy, deliver))
            inflight[node] = inflight.get(node, 0) + n
            if deliver:
                fanout[node] = fanout.get(node, 0) + n
                self.counters["fanout_sent"] += n
        if interest.local:
            out.deliveries.append((topic, seq, epoch, n, batch))
        if interest.queues and self.queues is not None:
            self.queues.dispatch(topic, seq, epoch, n, batch, interest.queues, out)
        if self.consumers is not None:
            self.consumers.published(topic, now, out)
        self.counters["owned_published"] += n
        if route is None:
            return
        if replicated and interest.replicas:
            replicas = {node for node, _, _ in interest.replicas}
            deadline = now + self.ack_timeout
            waiting = Waiting(
                epoch, seq, n, route, interest.reached, interest.subscribers, replicas, deadline
            )
            self.replication.wait(topic, waiting)
        else:
            self.routes.ack(out, route, seq, interest.reached, interest.subscribers, n, lazy)

    def close(self, topic: str, route: Route | None, now: float, out: Outbox) -> None:
        """Delete a topic we own: a final ``closed`` everywhere, history dropped."""
        epoch, seq = self.sequencer.stamp(topic, now)
        self.sequencer.forget(topic)
        interest = self.interest.of(topic)  # replicas as placed under the topic's retention
        self.history.drop(topic)
        for endpoint in interest.endpoints:
            out.entry(endpoint, Closed, ClosedEntry(topic, seq, epoch))
        for node, endpoint, deliver in interest.replicas:  # replicas drop the history too
            out.entry(endpoint, Closed, ClosedEntry(topic, seq, epoch, deliver))
            self.flow.sent(node)
        for node in interest.nodes:
            self.flow.sent(node)
        if interest.local:
            out.deliveries.append((topic, seq, epoch, 0, None))
        if route is not None:
            self.routes.ack(out, route, seq, interest.reached, interest.subscribers)

    def configure(
        self, topic: str, retention: Retention, route: Route | None, now: float, out: Outbox
    ) -> None:
        """Set a topic's retention here and at its replicas; acked with seq 0."""
        self.history.configure(topic, retention, now)
        for node in self.replication.replicas(topic):
            endpoint = self.routes.endpoint_of(node)
            if endpoint is not None:
                out.send(endpoint, Handoff([HandoffEntry(topic, retention, [])]))
        if route is not None:
            self.routes.ack(out, route, 0, 0, 0)

    def on_stored(self, sender: str, message: Stored, now: float, out: Outbox) -> None:
        """A replica confirmed what it stored: ack the publishes that waited for it."""
        for topic, epoch, seq in message.entries:
            if seq == 0:  # the replica missed a copy of this epoch
                for waiting in self.replication.missed(sender, topic, epoch):
                    why = f"replica {sender} missed a copy"
                    self.routes.refuse(out, waiting.route, E_REPLICA_LOST, why, waiting.n)
                if self.sequencer.epoch(topic) == epoch:
                    self.sequencer.forget(topic)  # a new epoch, which it can confirm again
                continue
            for done in self.replication.confirmed(sender, topic, epoch, seq):
                self.routes.ack(out, done.route, done.seq, done.nodes, done.subscribers, done.n)

    def peer_down(self, node: str, out: Outbox) -> None:
        for waiting in self.replication.lost(node):
            why = f"replica {node} went away first"
            self.routes.refuse(out, waiting.route, E_REPLICA_LOST, why, waiting.n)
        self.interest.clear()

    def ring_changed(self, old_nodes: frozenset[str], now: float, out: Outbox) -> None:
        """Stop sequencing topics we no longer own: their next owner starts a new epoch."""
        self.interest.clear()
        self.sequencer.retain(lambda topic: self.ring.owner(topic) == self.node)

    def healed(self) -> None:
        """Peers declared dead are back in the same life: a netsplit healed. Their
        subscribers missed what we sequenced meanwhile, even when their side sequenced
        nothing (no handoff brings anything new, §7.8), and a recovery they ran during
        the split was answered by the owner of their side, which held none of it. Every
        topic opens a new epoch, so that they fetch again from the oldest position they
        know (§7.9)."""
        self.sequencer.retain(lambda _topic: False)

    def expire(self, now: float, out: Outbox) -> None:
        for waiting in self.replication.expired(now):
            why = f"not replicated within {self.ack_timeout} s"
            self.routes.refuse(out, waiting.route, E_TIMEOUT, why, waiting.n)
        if now >= self._next_idle_sweep:
            self._next_idle_sweep = now + self.idle_topic_ttl / 10
            self.sequencer.forget_idle(now, self.idle_topic_ttl)
