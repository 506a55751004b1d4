"""Routing of publishes: to the topic's owner, sequenced there, one copy per interested node.

Rules (docs/PROTOCOL.md, "Routing"):

* A publish entering any node goes to the owner named by that node's ring, in one hop
  when views agree. A node that receives a forward for a topic it does not own (views
  differ for a moment) forwards it again; after ``MAX_HOPS`` it is refused, never looped.
* The owner stamps ``(epoch, seq)``: seq counts 1, 2, 3 ... per topic within an epoch, and
  a new epoch starts whenever the owner (re)starts sequencing a topic. Epochs a node
  hands out only grow.
* The owner sends exactly one copy to each node that has an exact or prefix member for
  the topic, and delivers locally when it has one itself; nodes without interest get
  nothing. It also stores the message in the topic's history and sends a ``store`` copy
  to each replica (replication.py), which delivers it too when it has interest.
* Ack levels: ``owner`` acks once sequenced; ``replicated`` once every replica confirmed
  it stored the message (refused with ``no_replica`` before sequencing when no replica
  is reachable, with ``replica_lost`` when a replica goes away first).
* Flow control: every data entry sent to a peer (a forward, a fan-out copy, a
  ``closed``) is in flight until that peer confirms it processed it (``consumed``). A
  node with more than ``flow_window`` entries in flight to any peer is *saturated*: it
  takes no new publishes (NodeCore defers forwards, the IO layer stops reading its
  clients) until confirmations come back. Fan-out copies are always delivered, so
  saturation spreads back to the publishers and never forms a cycle.
* Acks travel back along the path the publish took: each hop that forwarded keeps a
  pending entry and relays the owner's ack (or refusal); if the next hop dies first,
  the publish is refused with ``owner_lost`` (it may or may not have been delivered).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from zdps.core.history import HistoryStore, Retention
from zdps.core.outbox import Outbox
from zdps.core.replication import Replication, Route, Waiting
from zdps.core.ring import HashRing
from zdps.core.scope import Scope
from zdps.wire import (
    ACK,
    API_ACK,
    API_NACK,
    CLOSE,
    CLOSED,
    CONFIGURE,
    CONSUMED,
    E_MALFORMED,
    E_NO_REPLICA,
    E_NO_ROUTE,
    E_OWNER_LOST,
    E_REPLICA_LOST,
    E_TIMEOUT,
    E_TOO_MANY_HOPS,
    FANOUT,
    FORWARD,
    HANDOFF,
    LEVEL_OWNER,
    LEVEL_REPLICATED,
    NACK,
    STORE,
    STORED,
    ProtocolError,
    closed_header,
    message_header,
)

MAX_HOPS = 3
MAX_ACK_RUN = 1_000_000  # longest ack run accepted from a peer
HANDOFF_BUDGET = 8 * 1024 * 1024  # payload bytes per handoff message
_U64 = 1 << 64

# A Route (replication.py) says where an ack goes: (client identity, ref) for a local
# client, or (node id, ack id) for the peer that forwarded the publish to us.


@dataclass(slots=True)
class Interest:
    """Who a publish to one topic reaches (cached until membership or the ring changes).

    ``endpoints``/``nodes`` get a ``fanout`` copy; ``replicas`` get a ``store`` copy,
    delivered there too when the replica has interest, so no node gets two copies.
    """

    endpoints: list[str]
    nodes: list[str]
    local: bool
    subscribers: int
    replicas: list[tuple[str, str, bool]]  # (node, endpoint, deliver there too)
    reached: int


# A publish waiting for the next hop's ack: (route, next hop, deadline).
_Pending = tuple[Route, str, float]


class Sequencer:
    """Per-topic (epoch, seq) counters of the topics this node sequences."""

    def __init__(
        self, epoch_base_ms: int, started: float, floor: Callable[[str], int] = lambda _: 0
    ) -> None:
        self._base = epoch_base_ms
        self._started = started
        self._last_epoch = 0
        self._floor = floor  # the newest epoch already in the topic's history
        self._topics: dict[str, list[int]] = {}

    def stamp(self, topic: str, now: float) -> tuple[int, int]:
        """The (epoch, seq) of the next message on ``topic``.

        A new epoch is above every epoch this node handed out and every epoch in the
        topic's history, so ``(epoch, seq)`` keeps growing across owner changes.
        """
        state = self._topics.get(topic)
        if state is None:
            epoch = max(
                self._base + int((now - self._started) * 1000),
                self._last_epoch + 1,
                self._floor(topic) + 1,
            )
            self._last_epoch = epoch
            state = self._topics[topic] = [epoch, 0, now]
        state[1] += 1
        state[2] = now
        return state[0], state[1]

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
class Router:
    """The publish path of one node."""

    node: str
    ring: HashRing
    scope: Scope
    endpoint_of: Callable[[str], str | None]
    outbox: Outbox
    counters: dict[str, int]
    sequencer: Sequencer
    history: HistoryStore
    replication: Replication
    ack_timeout: float = 10.0
    flow_window: int = 20_000
    peer_fanout: dict[str, int] = field(default_factory=dict)
    consumed: dict[str, int] = field(default_factory=dict)
    _inflight: dict[str, int] = field(default_factory=dict)
    _pending: dict[int, _Pending] = field(default_factory=dict)
    _next_ack: int = 1
    _interest: dict[str, Interest] = field(default_factory=dict)
    _interest_version: int = -1

    # ------------------------------------------------------------------ entry points

    def publish(
        self,
        topic: str,
        payload: bytes,
        route: Route | None,
        hops: int,
        now: float,
        level: int = LEVEL_OWNER,
    ) -> None:
        """Route one publish: sequence it here if we own the topic, else forward it."""
        owner = self.ring.owner(topic)
        if owner == self.node:
            self._sequence(topic, payload, route, level, now)
        elif level == LEVEL_OWNER:
            self._forward(FORWARD, [topic, payload], owner, route, hops, now)
        else:
            self._forward(FORWARD, [topic, payload], owner, route, hops, now, (level,))

    def close(self, topic: str, route: Route | None, hops: int, now: float) -> None:
        """Route a topic deletion like a publish; the owner sends the final ``closed``."""
        owner = self.ring.owner(topic)
        if owner != self.node:
            self._forward(CLOSE, [topic], owner, route, hops, now)
            return
        epoch, seq = self.sequencer.stamp(topic, now)
        self.sequencer.forget(topic)
        interest = self.interest(topic)  # replicas as placed under the topic's own retention
        self.history.drop(topic)
        self._interest.pop(topic, None)
        for endpoint in interest.endpoints:
            self.outbox.batch(endpoint, CLOSED, [topic, seq, epoch])
        for _node, endpoint, deliver in interest.replicas:  # replicas drop the history
            entry = [topic, seq, epoch] if deliver else [topic, seq, epoch, False]
            self.outbox.batch(endpoint, CLOSED, entry)
        self._sent(interest.nodes)
        self._sent([node for node, _, _ in interest.replicas])
        if interest.local:
            self.outbox.deliveries.append((topic, closed_header(seq, epoch), b""))
        if route is not None:
            self._ack(route, seq, interest.reached, interest.subscribers)

    def configure(
        self, topic: str, retention: Retention, route: Route | None, hops: int, now: float
    ) -> None:
        """Route a topic's retention setting to its owner, which passes it to its replicas."""
        owner = self.ring.owner(topic)
        if owner != self.node:
            self._forward(CONFIGURE, [topic, *retention], owner, route, hops, now)
            return
        self.history.configure(topic, retention, now)
        self._interest.pop(topic, None)  # a retention of 0 stops replication
        for node in self.replication.replicas(topic):
            endpoint = self.endpoint_of(node)
            if endpoint is not None:
                self.outbox.send(endpoint, [HANDOFF, [[topic, list(retention), []]]])
        if route is not None:
            self._ack(route, 0, 0, 0)

    def on_fanout(self, entries: list) -> None:
        """Copies sent to us by owners: deliver them locally, in the order received."""
        deliveries = self.outbox.deliveries
        for entry in entries:
            topic, seq, epoch, payload = _delivery(entry, 4)
            deliveries.append((topic, message_header(seq, epoch), payload))
        self.counters["fanout_received"] += len(entries)

    def on_closed(self, entries: list) -> None:
        for entry in entries:
            deliver = type(entry) is not list or len(entry) != 4 or entry.pop() is not False
            topic, seq, epoch = _delivery(entry, 3)
            self.history.drop(topic)
            if deliver:
                self.outbox.deliveries.append((topic, closed_header(seq, epoch), b""))

    def on_store(self, sender: str, entries: list, now: float) -> None:
        """Copies from an owner for which we are a replica: store, and deliver if asked."""
        store, stored = self.history.store, self.replication.stored
        deliveries = self.outbox.deliveries
        delivered = 0
        for entry in entries:
            if type(entry) is not list or len(entry) != 5:
                raise ProtocolError(E_MALFORMED, "store entries are [*fanout entry, deliver]")
            topic, seq, epoch, payload = _delivery(entry[:4], 4)
            store(topic, epoch, seq, payload, now)
            stored(sender, topic, epoch, seq)
            if entry[4]:
                deliveries.append((topic, message_header(seq, epoch), payload))
                delivered += 1
        self.counters["replica_stored"] += len(entries)
        self.counters["fanout_received"] += delivered

    def on_stored(self, sender: str, entries: list) -> None:
        """A replica confirmed what it stored: acknowledge the publishes that waited for it."""
        for entry in entries:
            if type(entry) is not list or len(entry) != 3 or type(entry[0]) is not str:
                raise ProtocolError(E_MALFORMED, "stored entries are [topic, epoch, seq]")
            topic, epoch, seq = entry
            if seq == 0:  # the replica missed a copy of this epoch
                for waiting in self.replication.missed(sender, topic, epoch):
                    self.refuse(waiting.route, E_REPLICA_LOST, f"replica {sender} missed a copy")
                if self.sequencer.epoch(topic) == epoch:
                    self.sequencer.forget(topic)  # a new epoch, which it can confirm again
                continue
            for done in self.replication.confirmed(sender, topic, epoch, seq):
                self._ack(done.route, done.seq, done.nodes, done.subscribers)

    def on_handoff(self, sender: str, entries: list, now: float) -> None:
        """History of topics we became responsible for, from another holder.

        Entries we did not have are passed on to the rest of the topic's placement as we
        see it: holders hand over by their own view of the ring, which after a heal may
        miss the owner. Only new entries travel on, so this ends.
        """
        for topic, retention, stored in entries:
            if type(topic) is not str or type(stored) is not list:
                raise ProtocolError(E_MALFORMED, "handoff entries are [topic, retention, entries]")
            if retention is not None and (
                type(retention) is not list
                or len(retention) != 2
                or type(retention[0]) is not int
                or not isinstance(retention[1], int | float)
            ):
                raise ProtocolError(E_MALFORMED, "a retention is [count, age]")
            if not all(type(e) is list and len(e) == 4 and type(e[2]) is bytes for e in stored):
                raise ProtocolError(E_MALFORMED, "handoff entries hold [epoch, seq, payload, age]")
            if not self.history.absorb(topic, retention, stored, now):
                continue
            # Messages we did not have (the other side of a healed netsplit): a new
            # epoch, above them, makes every subscriber look for what it missed.
            self.sequencer.forget(topic)
            for node in self.ring.successors(topic, self.replication.factor + 1):
                if node not in (self.node, sender):
                    self._hand_over(node, topic, now)

    def processed(self, sender: str, count: int) -> None:
        """``count`` data entries from ``sender`` were handled: confirm them this turn."""
        self.consumed[sender] = self.consumed.get(sender, 0) + count

    def on_consumed(self, sender: str, count: int) -> None:
        """``sender`` confirmed ``count`` of the data entries we sent it."""
        if type(count) is not int or count < 0:
            raise ProtocolError(E_MALFORMED, "consumed carries a count >= 0")
        self._inflight[sender] = max(0, self._inflight.get(sender, 0) - count)

    @property
    def saturated(self) -> bool:
        """More than ``flow_window`` entries unconfirmed by some peer: take no new work."""
        window = self.flow_window
        return any(count > window for count in self._inflight.values())

    def confirm(self, everything: bool = False) -> None:
        """Send ``consumed`` confirmations: a peer's once they reach 1/8 of the window.

        Confirming every entry at once would cost a frame per message at low rates;
        the node's periodic tick confirms ``everything`` left, so a peer waits at most
        one heartbeat interval, far below the time it takes to fill its window.
        """
        for owner, entries in self.replication.confirmations().items():
            endpoint = self.endpoint_of(owner)
            if endpoint is not None:
                self.outbox.send(endpoint, [STORED, entries])
        threshold = 0 if everything else self.flow_window // 8
        for sender in [s for s, count in self.consumed.items() if count > threshold]:
            endpoint = self.endpoint_of(sender)
            if endpoint is not None:
                self.outbox.send(endpoint, [CONSUMED, self.consumed[sender]])
            del self.consumed[sender]

    def on_ack(self, entries: list) -> None:
        """Acks from the next hop (runs of ``n``): relay each one back along its route."""
        pop, ack = self._pending.pop, self._ack
        for ack_id, seq, nodes, subscribers, n in entries:
            if type(n) is not int or not 1 <= n <= MAX_ACK_RUN or type(ack_id) is not int:
                raise ProtocolError(E_MALFORMED, f"ack runs are 1 to {MAX_ACK_RUN} long")
            for i in range(n):
                pending = pop(ack_id + i, None)
                if pending is not None:
                    ack(pending[0], seq + i, nodes, subscribers)

    def on_nack(self, entries: list) -> None:
        for ack_id, code, message in entries:
            pending = self._pending.pop(ack_id, None)
            if pending is not None:
                self.refuse(pending[0], code, message)

    def peer_down(self, node: str) -> None:
        """Refuse every publish still waiting on ``node``; the reach of topics changed."""
        lost = [ack_id for ack_id, p in self._pending.items() if p[1] == node]
        for ack_id in lost:
            route = self._pending.pop(ack_id)[0]
            self.refuse(route, E_OWNER_LOST, f"node {node} went away before acknowledging")
        for waiting in self.replication.lost(node):
            self.refuse(waiting.route, E_REPLICA_LOST, f"replica {node} went away first")
        self._inflight.pop(node, None)
        self.consumed.pop(node, None)
        self._interest.clear()

    def ring_changed(self, old_nodes: frozenset[str], now: float) -> None:
        """Stop sequencing topics we no longer own (their next owner starts a new epoch);
        hand history over to the nodes newly responsible for it."""
        self._interest.clear()
        self.sequencer.retain(lambda topic: self.ring.owner(topic) == self.node)
        sends, drops = self.replication.handoffs(old_nodes)
        for node, topics in sends.items():
            for topic in topics:
                self._hand_over(node, topic, now)
        for topic in drops:
            self.history.drop(topic)

    def expire(self, now: float) -> None:
        """Refuse publishes whose ack did not come back within ``ack_timeout``."""
        expired = []
        for ack_id, pending in self._pending.items():
            if pending[2] > now:
                break
            expired.append(ack_id)
        for ack_id in expired:
            route = self._pending.pop(ack_id)[0]
            self.refuse(route, E_TIMEOUT, f"no acknowledgement within {self.ack_timeout} s")
        for waiting in self.replication.expired(now):
            self.refuse(waiting.route, E_TIMEOUT, f"not replicated within {self.ack_timeout} s")

    def _hand_over(self, node: str, topic: str, now: float) -> None:
        """Send ``node`` our history of ``topic`` (and its retention), in chunks."""
        endpoint = self.endpoint_of(node)
        if endpoint is not None:
            for chunk in _chunks(self.history.export(topic, now)):
                self.outbox.send(endpoint, [HANDOFF, [chunk]])

    def refuse(self, route: Route, code: str, message: str) -> None:
        """Tell whoever waits on ``route`` that the publish failed."""
        target, ref = route
        if isinstance(target, bytes):
            self.outbox.batch_reply(target, API_NACK, [ref, code, message])
        else:
            endpoint = self.endpoint_of(target)
            if endpoint is not None:
                self.outbox.batch(endpoint, NACK, [ref, code, message])

    @property
    def pending(self) -> int:
        return len(self._pending) + self.replication.pending

    # ------------------------------------------------------------------ internals

    def interest(self, topic: str) -> Interest:
        """Who a publish to ``topic`` reaches, from the scope replica (cached)."""
        if self._interest_version != self.scope.version:
            self._interest.clear()
            self._interest_version = self.scope.version
        found = self._interest.get(topic)
        if found is None:
            reach = self.scope.reach(topic.encode())
            replicas = []
            if self.ring.owner(topic) == self.node and self.history.retention(topic).count > 0:
                for node in self.replication.replicas(topic):
                    endpoint = self.endpoint_of(node)
                    if endpoint is not None:
                        replicas.append((node, endpoint, node in reach))
            copied = {node for node, _, _ in replicas}
            nodes, endpoints = [], []
            for node in reach:
                endpoint = self.endpoint_of(node) if node != self.node else None
                if endpoint is not None and node not in copied:
                    nodes.append(node)
                    endpoints.append(endpoint)
            local = self.node in reach
            reached = len(nodes) + local + sum(deliver for _, _, deliver in replicas)
            found = Interest(endpoints, nodes, local, sum(reach.values()), replicas, reached)
            if len(self._interest) > 100_000:
                self._interest.clear()
            self._interest[topic] = found
        return found

    def _sequence(
        self, topic: str, payload: bytes, route: Route | None, level: int, now: float
    ) -> None:
        interest = self.interest(topic)
        replicated = level == LEVEL_REPLICATED and route is not None
        if replicated and not interest.replicas and self.replication.factor:
            self.refuse(route, E_NO_REPLICA, "no replica is reachable to store the message")
            return
        epoch, seq = self.sequencer.stamp(topic, now)
        self.history.store(topic, epoch, seq, payload, now)
        fanout, inflight = self.peer_fanout, self._inflight
        if interest.endpoints:
            entry = [topic, seq, epoch, payload]
            batch = self.outbox.batch
            for endpoint in interest.endpoints:
                batch(endpoint, FANOUT, entry)
            for node in interest.nodes:
                fanout[node] = fanout.get(node, 0) + 1
                inflight[node] = inflight.get(node, 0) + 1
            self.counters["fanout_sent"] += len(interest.endpoints)
        for node, endpoint, deliver in interest.replicas:
            self.outbox.batch(endpoint, STORE, [topic, seq, epoch, payload, deliver])
            inflight[node] = inflight.get(node, 0) + 1
            if deliver:
                fanout[node] = fanout.get(node, 0) + 1
                self.counters["fanout_sent"] += 1
        if interest.local:
            self.outbox.deliveries.append((topic, message_header(seq, epoch), payload))
        self.counters["owned_published"] += 1
        if route is None:
            return
        if replicated and interest.replicas:
            replicas = {node for node, _, _ in interest.replicas}
            deadline = now + self.ack_timeout
            waiting = Waiting(
                epoch, seq, route, interest.reached, interest.subscribers, replicas, deadline
            )
            self.replication.wait(topic, waiting)
        else:
            self._ack(route, seq, interest.reached, interest.subscribers)

    def _forward(
        self,
        kind: str,
        body: list,
        owner: str | None,
        route: Route | None,
        hops: int,
        now: float,
        extra: tuple[int, ...] = (),
    ) -> None:
        endpoint = self.endpoint_of(owner) if owner else None
        if endpoint is None or hops >= MAX_HOPS:
            if route is not None:
                if endpoint is None:
                    self.refuse(route, E_NO_ROUTE, f"no connection to the owner {owner}")
                else:
                    self.refuse(route, E_TOO_MANY_HOPS, f"more than {MAX_HOPS} hops")
            return
        ack_id = 0
        if route is not None:
            ack_id = self._next_ack
            self._next_ack += 1
            self._pending[ack_id] = (route, owner, now + self.ack_timeout)
        self.outbox.batch(endpoint, kind, [*body, ack_id, hops + 1, *extra])
        self._inflight[owner] = self._inflight.get(owner, 0) + 1
        self.counters["routed_to_owner"] += 1

    def _sent(self, nodes: list[str]) -> None:
        inflight = self._inflight
        for node in nodes:
            inflight[node] = inflight.get(node, 0) + 1

    def _ack(self, route: Route, seq: int, nodes: int, subscribers: int) -> None:
        target, ref = route
        if isinstance(target, bytes):
            self.outbox.client_ack(target, API_ACK, ref, seq, nodes, subscribers)
        else:
            endpoint = self.endpoint_of(target)
            if endpoint is not None:
                self.outbox.ack(endpoint, ACK, ref, seq, nodes, subscribers)


def _delivery(entry: object, size: int) -> list:
    """Check one fanout (4 fields) or closed (3 fields) entry from a peer."""
    if (
        type(entry) is not list
        or len(entry) != size
        or type(entry[0]) is not str
        or type(entry[1]) is not int
        or type(entry[2]) is not int
        or not 0 <= entry[1] < _U64
        or not 0 <= entry[2] < _U64
        or (size == 4 and type(entry[3]) is not bytes)
    ):
        shape = "[topic, seq, epoch, payload]" if size == 4 else "[topic, seq, epoch]"
        raise ProtocolError(
            E_MALFORMED, f"{'fanout' if size == 4 else 'closed'} entries are {shape}"
        )
    return entry


def _chunks(export: list) -> list[list]:
    """Split one topic's handoff so that no message carries much over HANDOFF_BUDGET."""
    topic, retention, entries = export
    chunks, current, size = [], [], 0
    for entry in entries:
        if current and size + len(entry[2]) > HANDOFF_BUDGET:
            chunks.append([topic, retention, current])
            current, size = [], 0
        current.append(entry)
        size += len(entry[2])
    chunks.append([topic, retention, current])
    return chunks
