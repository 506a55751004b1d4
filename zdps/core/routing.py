"""Routing: every publish to its topic's owner, and the copies owners send back (§7.1).

* A publish entering any node goes to the owner named by that node's ring, in one hop
  when views agree. A node that receives a forward for a topic it does not own (views
  differ for a moment) forwards it again; after ``MAX_HOPS`` it is refused
  (``too_many_hops``), never looped. Without a link to the owner it is ``no_route``.
* A hop that forwards a publish with a route keeps it pending (``acks.py``) so the
  owner's answer can travel back the same way.
* ``fwd`` messages that arrive while the node is saturated wait, in order, until flow
  control lets them through (``flow.py``); copies from owners are always delivered.
* Deletions (``close``) and retention settings (``configure``) travel like publishes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from zdps.core.acks import AckRelay, Route
from zdps.core.flow import FlowControl
from zdps.core.history import HistoryStore
from zdps.core.outbox import Outbox
from zdps.core.part import Part
from zdps.core.replication import Replication
from zdps.core.ring import HashRing
from zdps.core.sequencing import Owner
from zdps.wire.data import (
    LEVEL_OWNER,
    Close,
    Closed,
    CloseEntry,
    Configure,
    ConfigureEntry,
    Consumed,
    Fanout,
    Forward,
    Retention,
    Store,
    Stored,
    forward_entry,
)
from zdps.wire.delivery import closed_header, message_header
from zdps.wire.errors import E_NO_ROUTE, E_TOO_MANY_HOPS
from zdps.wire.limits import MAX_HOPS


@dataclass(slots=True)
class Router(Part):
    """The publish path of one node, up to the owner and back down to the subscribers."""

    node: str
    ring: HashRing
    endpoint_of: Callable[[str], str | None]
    owner: Owner
    acks: AckRelay
    flow: FlowControl
    history: HistoryStore
    replication: Replication
    counters: dict[str, int]

    # ------------------------------------------------------------------ up to the owner

    def publish(
        self,
        topic: str,
        payload: bytes,
        route: Route | None,
        hops: int,
        now: float,
        out: Outbox,
        level: int = LEVEL_OWNER,
    ) -> None:
        """Route one publish: sequence it here if we own the topic, else forward it."""
        owner = self.ring.owner(topic)
        if owner == self.node:
            self.owner.sequence(topic, payload, route, level, now, out)
            return
        hop = self._next_hop(owner, route, hops, now, out)
        if hop is not None:
            out.batch(hop[0], Forward, forward_entry(topic, payload, hop[1], hops + 1, level))

    def close(self, topic: str, route: Route | None, hops: int, now: float, out: Outbox) -> None:
        """Route a topic deletion like a publish; the owner sends the final ``closed``."""
        owner = self.ring.owner(topic)
        if owner == self.node:
            self.owner.close(topic, route, now, out)
            return
        hop = self._next_hop(owner, route, hops, now, out)
        if hop is not None:
            out.batch(hop[0], Close, CloseEntry(topic, hop[1], hops + 1))

    def configure(
        self,
        topic: str,
        retention: Retention,
        route: Route | None,
        hops: int,
        now: float,
        out: Outbox,
    ) -> None:
        """Route a topic's retention to its owner, which passes it to its replicas."""
        owner = self.ring.owner(topic)
        if owner == self.node:
            self.owner.configure(topic, retention, route, now, out)
            return
        hop = self._next_hop(owner, route, hops, now, out)
        if hop is not None:
            out.batch(hop[0], Configure, ConfigureEntry(topic, retention, hop[1], hops + 1))

    def _next_hop(
        self, owner: str | None, route: Route | None, hops: int, now: float, out: Outbox
    ) -> tuple[str, int] | None:
        """The owner's endpoint and the ack id to forward with (0: none wanted), or None
        if the entry cannot be forwarded (refused if it has a route); counts it in flight.
        """
        endpoint = self.endpoint_of(owner) if owner else None
        if endpoint is None or hops >= MAX_HOPS:
            if route is not None:
                routes = self.owner.routes
                if endpoint is None:
                    routes.refuse(out, route, E_NO_ROUTE, f"no connection to the owner {owner}")
                else:
                    routes.refuse(out, route, E_TOO_MANY_HOPS, f"more than {MAX_HOPS} hops")
            return None
        assert owner is not None
        inflight = self.flow.inflight
        inflight[owner] = inflight.get(owner, 0) + 1
        self.counters["routed_to_owner"] += 1
        return endpoint, 0 if route is None else self.acks.track(route, owner, now)

    # ------------------------------------------------------------------ from other hops

    def on_forward(self, sender: str, message: Forward, now: float, out: Outbox) -> None:
        if self.flow.defer(sender, message):
            self.counters["deferred"] += len(message.entries)
        else:
            self._route_forwards(sender, message, now, out)

    def on_consumed(self, sender: str, message: Consumed, now: float, out: Outbox) -> None:
        was_saturated = self.flow.saturated
        self.flow.on_consumed(sender, message)
        if was_saturated:
            self.resume(now, out)

    def resume(self, now: float, out: Outbox) -> None:
        """Route forwards deferred while saturated, oldest first, until saturated again."""
        flow = self.flow
        while flow.deferred and not flow.saturated:
            sender, message = flow.deferred.popleft()
            self._route_forwards(sender, message, now, out)

    def _route_forwards(self, sender: str, message: Forward, now: float, out: Outbox) -> None:
        publish = self.publish
        self.flow.processed(sender, len(message.entries))
        for topic, payload, ack_id, hops, level in message.entries:
            publish(topic, payload, (sender, ack_id) if ack_id else None, hops, now, out, level)

    def on_close(self, sender: str, message: Close, now: float, out: Outbox) -> None:
        self.flow.processed(sender, len(message.entries))
        for topic, ack_id, hops in message.entries:
            self.close(topic, (sender, ack_id) if ack_id else None, hops, now, out)

    def on_configure(self, sender: str, message: Configure, now: float, out: Outbox) -> None:
        self.flow.processed(sender, len(message.entries))
        for topic, retention, ack_id, hops in message.entries:
            self.configure(topic, retention, (sender, ack_id) if ack_id else None, hops, now, out)

    def confirm(self, out: Outbox, all_: bool) -> None:
        """What this node owes its peers: ``stored`` to owners, ``consumed`` to senders."""
        for owner, entries in self.replication.confirmations().items():
            endpoint = self.endpoint_of(owner)
            if endpoint is not None:
                out.send(endpoint, Stored(entries))
        self.flow.confirm(out, self.endpoint_of, all_)

    # ------------------------------------------------------------------ down from owners

    def on_fanout(self, sender: str, message: Fanout, now: float, out: Outbox) -> None:
        """Copies sent to us by owners: deliver them locally, in the order received."""
        deliveries = out.deliveries
        for topic, seq, epoch, payload in message.entries:
            deliveries.append((topic, message_header(seq, epoch), payload))
        self.counters["fanout_received"] += len(message.entries)
        self.flow.processed(sender, len(message.entries))

    def on_closed(self, sender: str, message: Closed, now: float, out: Outbox) -> None:
        for topic, seq, epoch, deliver in message.entries:
            self.history.drop(topic)
            if deliver:
                out.deliveries.append((topic, closed_header(seq, epoch), b""))
        self.flow.processed(sender, len(message.entries))

    def on_store(self, sender: str, message: Store, now: float, out: Outbox) -> None:
        """Copies from an owner for which we are a replica: store, and deliver if asked."""
        store, stored = self.history.store, self.replication.stored
        deliveries = out.deliveries
        delivered = 0
        for topic, seq, epoch, payload, deliver in message.entries:
            store(topic, epoch, seq, payload, now)
            stored(sender, topic, epoch, seq)
            if deliver:
                deliveries.append((topic, message_header(seq, epoch), payload))
                delivered += 1
        self.counters["replica_stored"] += len(message.entries)
        self.counters["fanout_received"] += delivered
        self.flow.processed(sender, len(message.entries))
