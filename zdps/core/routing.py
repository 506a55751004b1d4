"""Routing: every publish to its topic's owner, and the copies owners send back (§7.1).

* Publishes travel in batches (one topic, ``n`` messages, one blob): every step here is
  work per batch, none per message.
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
from zdps.wire.batches import join_batches
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
)
from zdps.wire.errors import E_NO_ROUTE, E_TOO_MANY_HOPS, ProtocolError
from zdps.wire.limits import MAX_HOPS

JOIN_BELOW = 256  # a client's batches smaller than this join the one before (``_join``)
JOIN_BYTES = 64 * 1024  # while their payloads together stay under this many bytes


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
    bad_input: Callable[[str, str], None]

    # ------------------------------------------------------------------ up to the owner

    def publish(
        self,
        topic: str,
        n: int,
        batch: bytes,
        route: Route | None,
        hops: int,
        now: float,
        out: Outbox,
        level: int = LEVEL_OWNER,
        lazy: bool = False,
    ) -> None:
        """Route a batch of ``n`` publishes: sequence it here if we own the topic, else
        forward it, unopened; ``lazy``: its acknowledgement may be paced (§7.4)."""
        owner = self.ring.owner(topic)
        if owner == self.node:
            self.owner.sequence(topic, n, batch, route, level, now, out, lazy)
            return
        if (
            n < JOIN_BELOW
            and route is not None
            and self._join(owner, topic, n, batch, route, level, lazy, out)
        ):
            return
        hop = self._next_hop(owner, route, hops, now, out, n, lazy)
        if hop is not None:
            entry = (topic, n, batch, hop[1], hops + 1, level)  # a ForwardEntry (data.py)
            out.entry(hop[0], Forward, (*entry, True) if lazy and hop[1] else entry)

    def _join(
        self, owner: str | None, topic: str, n: int, batch: bytes, route: Route, level: int,
        lazy: bool, out: Outbox,
    ) -> bool:  # fmt: skip
        """Join a small batch from a client to the forward queued just before it this
        turn, if it continues that one (same topic, level and client, the next refs):
        one entry and one ack then carry both, so the hops after this one do their work
        per batch once. At a moderate rate a client's publishes arrive one per frame, a
        few per wake-up; joined, they cost the owner and the subscribers' nodes about
        what one does."""
        endpoint = self.endpoint_of(owner) if owner else None
        queue = out.peers.get(endpoint) if endpoint else None
        if not queue or type(queue[-1]) is not Forward:
            return False
        entries = queue[-1].entries
        last = entries[-1]
        joined = last[1] + n
        if (
            last[0] != topic
            or last[4] != 1
            or last[5] != level
            or not last[3]
            or joined >= JOIN_BELOW
            or len(last[2]) + len(batch) > JOIN_BYTES
            or (still_lazy := self.acks.extend(last[3], route, n, lazy)) is None
        ):
            return False
        lazy_mark = (True,) if still_lazy else ()  # a ForwardEntry's optional last field
        batch = join_batches(last[2], last[1], batch, n)
        entries[-1] = (topic, joined, batch, *last[3:6], *lazy_mark)
        assert owner is not None
        self.flow.inflight[owner] += n
        self.counters["routed_to_owner"] += n
        return True

    def close(self, topic: str, route: Route | None, hops: int, now: float, out: Outbox) -> None:
        """Route a topic deletion like a publish; the owner sends the final ``closed``."""
        owner = self.ring.owner(topic)
        if owner == self.node:
            self.owner.close(topic, route, now, out)
            return
        hop = self._next_hop(owner, route, hops, now, out)
        if hop is not None:
            out.entry(hop[0], Close, CloseEntry(topic, hop[1], hops + 1))

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
            out.entry(hop[0], Configure, ConfigureEntry(topic, retention, hop[1], hops + 1))

    def _next_hop(
        self,
        owner: str | None,
        route: Route | None,
        hops: int,
        now: float,
        out: Outbox,
        n: int = 1,
        lazy: bool = False,
    ) -> tuple[str, int] | None:
        """The owner's endpoint and the ack id to forward with (0: none wanted), or None
        if the entry cannot be forwarded (refused if it has a route); counts its ``n``
        messages in flight.
        """
        endpoint = self.endpoint_of(owner) if owner else None
        if endpoint is None or hops >= MAX_HOPS:
            if route is not None:
                routes = self.owner.routes
                if endpoint is None:
                    why = f"no connection to the owner {owner}"
                    routes.refuse(out, route, E_NO_ROUTE, why, n)
                else:
                    routes.refuse(out, route, E_TOO_MANY_HOPS, f"more than {MAX_HOPS} hops", n)
            return None
        assert owner is not None
        inflight = self.flow.inflight
        inflight[owner] = inflight.get(owner, 0) + n
        self.counters["routed_to_owner"] += n
        return endpoint, 0 if route is None else self.acks.track(route, n, owner, now, lazy)

    # ------------------------------------------------------------------ from other hops

    def on_forward(self, sender: str, message: Forward, now: float, out: Outbox) -> None:
        if self.flow.defer(sender, message):
            self.counters["deferred"] += message.messages()
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
        self.flow.processed(sender, message.messages())
        for topic, n, batch, ack_id, hops, level, lazy in message.entries:
            route = (sender, ack_id) if ack_id else None
            publish(topic, n, batch, route, hops, now, out, level, lazy)

    def on_close(self, sender: str, message: Close, now: float, out: Outbox) -> None:
        self.flow.processed(sender, len(message.entries))
        for topic, ack_id, hops in message.entries:
            self.close(topic, (sender, ack_id) if ack_id else None, hops, now, out)

    def on_configure(self, sender: str, message: Configure, now: float, out: Outbox) -> None:
        self.flow.processed(sender, len(message.entries))
        for topic, retention, ack_id, hops in message.entries:
            self.configure(topic, retention, (sender, ack_id) if ack_id else None, hops, now, out)

    def confirm(self, out: Outbox, all_: bool) -> None:
        """What this node owes its peers: ``stored`` to owners, ``consumed`` to senders.

        At the end of a turn only what someone waits for goes (``all_`` False): the
        confirmations a replicated publish waits on, and ``consumed`` once over 1/8 of
        the window; the rest goes at the next tick, so a copy does not cost a frame back.
        """
        for owner, entries in self.replication.confirmations(all_).items():
            endpoint = self.endpoint_of(owner)
            if endpoint is not None:
                out.send(endpoint, Stored(entries))
        self.flow.confirm(out, self.endpoint_of, all_)

    # ------------------------------------------------------------------ down from owners

    def on_fanout(self, sender: str, message: Fanout, now: float, out: Outbox) -> None:
        """Copies sent to us by owners: deliver them locally, in the order received."""
        deliveries = out.deliveries
        count = 0
        for entry in message.entries:  # [topic, seq, epoch, n, batch]
            deliveries.append(entry)
            count += entry[3]
        self.counters["fanout_received"] += count
        self.flow.processed(sender, count)

    def on_closed(self, sender: str, message: Closed, now: float, out: Outbox) -> None:
        for topic, seq, epoch, deliver in message.entries:
            self.history.drop(topic)
            if deliver:
                out.deliveries.append((topic, seq, epoch, 0, None))
        self.flow.processed(sender, len(message.entries))

    def on_store(self, sender: str, message: Store, now: float, out: Outbox) -> None:
        """Copies from an owner for which we are a replica: store, and deliver if asked.

        A batch older than what is held is merged message by message, which unpacks it:
        one that does not unpack (only a faulty peer sends one) costs only itself.
        """
        store, stored = self.history.store, self.replication.stored
        deliveries = out.deliveries
        count = delivered = 0
        for topic, seq, epoch, n, batch, deliver, confirm in message.entries:
            count += n
            try:
                store(topic, epoch, seq, n, batch, now)
            except ProtocolError as exc:
                self.bad_input(exc.code, f"store entry from {sender}: {exc.message}")
                continue
            stored(sender, topic, epoch, seq, n, confirm)
            if deliver:
                deliveries.append((topic, seq, epoch, n, batch))
                delivered += n
        self.counters["replica_stored"] += count
        self.counters["fanout_received"] += delivered
        self.flow.processed(sender, count)
