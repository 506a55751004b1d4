"""Durable consumers' succession (docs/PROTOCOL.md §8.6): their states at the replicas.

The owner sends a consumer's state to the topic's replicas when it creates or deletes
it and at each timer tick it changed (``consumer_state``), and to the new owner when the
ring moves the topic; a replica that holds a state passes it on to an owner that joined
the ring or restarted before anyone noticed. A successor re-sends what was pending at
once and what came after the cursor as redeliveries (consumer.py ``succeed``), and an
owner that hears of the consumer from the other side of a split, or merges messages
from there, flags what that side may have handed out: never an unflagged duplicate.
History keeps what the consumers here and those it may succeed still need.

``Succession`` is a part of ``Consumers`` (consumers.py), on its state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from zdps.core.consumer import Consumer, ConsumerConfig, floor_of
from zdps.core.history import HistoryStore
from zdps.core.outbox import Outbox
from zdps.core.replication import Replication
from zdps.core.ring import HashRing
from zdps.topics import consumer_key
from zdps.wire.consumers import ConsumerCreate, ConsumerState, ConsumerStateEntry


@dataclass(slots=True)
class Durable:
    """One consumer at its owner: its settings, its state and what it did."""

    settings: ConsumerCreate
    state: Consumer
    key: bytes = field(init=False)  # its members' key in the overlay
    counts: dict[str, int] = field(default_factory=dict)
    turn: int = 0

    def __post_init__(self) -> None:
        self.key = consumer_key(self.settings.name.encode(), self.settings.topic.encode())

    def count(self, what: str, n: int = 1) -> None:
        if n:
            self.counts[what] = self.counts.get(what, 0) + n


class Succession:
    """What ``Consumers`` does for succession: the attributes below are its own."""

    __slots__ = ()
    node: str
    ring: HashRing
    history: HistoryStore
    replication: Replication
    endpoint_of: Callable[[str], str | None]
    _durables: dict[str, dict[str, Durable]]
    _changed: set[tuple[str, str]]
    _successions: dict[tuple[str, str], ConsumerStateEntry]
    _woken: dict[tuple[str, str], Durable]

    def _state(self, topic: str, name: str) -> ConsumerStateEntry:
        durable = self._durables.get(topic, {}).get(name)
        if durable is None:
            return ConsumerStateEntry(topic, name, None, (0, 0), [])
        return ConsumerStateEntry(topic, name, durable.settings, *durable.state.snapshot())

    def _replicate(self, out: Outbox, to: str | None = None) -> None:
        """Changed states to the replicas of their topics (and to ``to``)."""
        sends: dict[str, list[ConsumerStateEntry]] = {}
        for topic, name in self._changed:
            state = self._state(topic, name)
            for node in {*self.replication.replicas(topic), *([to] if to else [])} - {self.node}:
                endpoint = self.endpoint_of(node)
                if endpoint is not None:
                    sends.setdefault(endpoint, []).append(state)
        self._changed.clear()
        for endpoint, states in sends.items():
            out.send(endpoint, ConsumerState(states))

    def on_consumer_state(
        self, sender: str, message: ConsumerState, now: float, out: Outbox
    ) -> None:
        """An owner's consumer states: kept to succeed it, or taken over now if the
        topic is ours and we run no such consumer yet."""
        for entry in message.entries:
            key = (entry.topic, entry.name)
            if entry.settings is None:
                self._successions.pop(key, None)
            else:
                self._successions[key] = entry
                if self.ring.owner(entry.topic) == self.node:
                    self._succeed(key, now, out)
            self._hold(entry.topic)

    def _succeed(self, key: tuple[str, str], now: float, out: Outbox) -> None:
        entry = self._successions.pop(key)
        topic, name = key
        durables = self._durables.setdefault(topic, {})
        settings = entry.settings
        if settings is None:
            return
        running = durables.get(name)
        if running is not None:  # the other side of a split ran it too (its owner, cut
            # off, or a replica that took over): what it handed out goes again flagged
            running.state.suspect = max(running.state.suspect, entry.cursor)
            self._catch_up(topic, running)
            return
        config = ConsumerConfig(settings.ack_wait, settings.max_deliver, settings.max_pending)
        newest = self.history.newest(topic)
        marks = entry.marks
        if marks is None:  # from a node before marks: what history holds up to the cursor
            held = self.history.epochs(topic).items()
            marks = [[e, s] for e, s in held if e < entry.cursor[0]] + [list(entry.cursor)]
        state = Consumer.succeed(config, entry.cursor, entry.pending, newest, now, marks)
        durable = durables[name] = Durable(settings, state)
        durable.count("succeeded")
        self._changed.add(key)
        self._catch_up(topic, durable)

    def ring_changed(self, old_nodes: frozenset[str], now: float, out: Outbox) -> None:
        """Consumers follow their topics: ours that moved go to their new owner; those we
        hold a state of and now own, we continue; the rest go to the new replicas."""
        self._replicas_lost(old_nodes)
        for topic in list(self._durables):
            owner = self.ring.owner(topic)
            if owner == self.node:
                self._changed.update((topic, name) for name in self._durables[topic])
                continue
            for name in self._durables[topic]:
                self._changed.add((topic, name))
                self._successions[topic, name] = self._state(topic, name)
            self._replicate(out, to=owner)
            del self._durables[topic]
            self.history.hold(topic, None)
        for key in [k for k in self._successions if self.ring.owner(k[0]) == self.node]:
            self._succeed(key, now, out)
        self._replicate(out)
        self._pass_on(old_nodes, out)

    def _replicas_lost(self, old_nodes: frozenset[str]) -> None:
        """A replica that left the ring may be cut off, not dead: on its side it takes
        over our consumers from the state it holds and hands out what it stored, that is
        what history holds now. Here that goes flagged, as it would after a succession."""
        lost = old_nodes - self.ring.nodes
        if not lost or not self._durables:
            return
        old_ring = self.ring.with_nodes(old_nodes)
        size = self.replication.factor + 1
        for topic, durables in self._durables.items():
            if lost.isdisjoint(old_ring.successors(topic, size)):
                continue
            newest = self.history.newest(topic)
            for durable in durables.values():
                durable.state.suspect = max(durable.state.suspect, newest)

    def _pass_on(self, old_nodes: frozenset[str], out: Outbox) -> None:
        """The states we hold of topics whose owner joined the ring, or restarted before
        anyone noticed it died, go to it: it has none, and the owner we had them from
        may be that very node. One that runs the consumer already keeps its own."""
        sends: dict[str, list[ConsumerStateEntry]] = {}
        for (topic, _), entry in self._successions.items():
            owner = self.ring.owner(topic)
            if owner is not None and owner != self.node and owner not in old_nodes:
                endpoint = self.endpoint_of(owner)
                if endpoint is not None:
                    sends.setdefault(endpoint, []).append(entry)
        for endpoint, states in sends.items():
            out.send(endpoint, ConsumerState(states))

    def absorbed(self, topic: str) -> None:
        """History merged new messages of ``topic`` from another node (handoff.py): an
        owner on the other side of a split may have handed them out already, so they
        go as redeliveries here, flagged (as after a succession)."""
        newest = self.history.newest(topic)
        for durable in self._durables.get(topic, {}).values():
            durable.state.suspect = max(durable.state.suspect, newest)
            self._catch_up(topic, durable)

    def _catch_up(self, topic: str, durable: Durable) -> None:
        """What history holds of older epochs past the consumer's marks came late from the
        other side of a split: it goes, flagged, and history keeps it from now on (a hold
        as of the last tick would not: the floor went back)."""
        history = self.history
        durable.state.catch_up(
            history.epochs(topic), lambda after, n: history.fetch(topic, *after, n)
        )
        self._hold(topic)
        self._woken[topic, durable.settings.name] = durable

    def _hold(self, topic: str) -> None:
        """History keeps what the topic's consumers still need: those run here, and
        those this node may succeed (as a replica, its history must outlast them too)."""
        floors = [d.state.floor for d in self._durables.get(topic, {}).values()]
        for (succession_topic, _), entry in self._successions.items():
            if succession_topic == topic:
                oldest = min([(e, s) for e, s, _ in entry.pending], default=None)
                floors.append(floor_of(entry.cursor, oldest))
        self.history.hold(topic, min(floors, default=None))
