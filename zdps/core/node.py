"""One zdps node as a sans-IO state machine: events and the time in, an Outbox out.

``NodeCore`` composes the protocol cores and dispatches to them. Membership decides
who the live peers are; every live peer is on the ring and in the scope overlay; the
parts (``Part``) each own one concern of the publish path and share one lifecycle:
``peer_down``, ``ring_changed`` and ``expire`` run over all of them. Inputs are cluster
frames, local XPUB (un)subscriptions, client API frames and timer ticks, each with the
current monotonic time. The IO layer owns the sockets and drains ``take()`` after
every wake-up; tests and the simulator drive the same object with no sockets at all.

Only ``ProtocolError`` means bad input: it is counted and the rest carries on. Any
other exception is a bug and propagates (the daemon logs it and exits 1). A node that
finds its id taken by an older node right after it started sets ``refusal``: the
daemon leaves and exits 1 with it (§4.2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zdps.core import membership_actions as acts
from zdps.core.acks import AckRelay, Routes
from zdps.core.barrier import Barriers
from zdps.core.clashes import verdict
from zdps.core.clients import ClientApi
from zdps.core.consumers import Consumers
from zdps.core.copy_pacing import CopyPacing
from zdps.core.drain import Drain
from zdps.core.flow import FlowControl
from zdps.core.groups import Groups
from zdps.core.handoff import HistoryHandoff
from zdps.core.history import HistoryStore
from zdps.core.history_fetch import HistoryFetches
from zdps.core.interest import InterestCache
from zdps.core.losses import SubscriberLosses
from zdps.core.membership import Membership
from zdps.core.outbox import Outbox
from zdps.core.overlay import Overlay
from zdps.core.part import Part
from zdps.core.publish_rate import PublishRate
from zdps.core.queues import QueueGroups
from zdps.core.replication import Replication
from zdps.core.ring import HashRing
from zdps.core.routing import Router
from zdps.core.sequencing import Owner, Sequencer
from zdps.core.status import COUNTERS, status, summary
from zdps.core.swim import Swim
from zdps.core.tunables import CoreConfig
from zdps.core.watches import Watches
from zdps.wire import data, gossip, requests
from zdps.wire.codec import EntryList, NodeMessage, decode_envelope
from zdps.wire.data import Retention
from zdps.wire.errors import E_BAD_VERSION, E_MALFORMED, E_SPOOFED, E_WRONG_SCOPE, ProtocolError
from zdps.wire.messages import MEMBERSHIP_KINDS, decode_message, message_kind
from zdps.wire.publish_entries import PublishDecoder

Handler = Callable[[str, Any, float, Outbox], None]


class NodeCore:
    """Everything one node decides, with no sockets, clocks or signals."""

    def __init__(
        self,
        node: str,
        incarnation: int,
        scope: str,
        endpoint: str,
        seeds: list[str],
        now: float,
        config: CoreConfig | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        config = self.config = config or CoreConfig()
        self.node = node
        self.scope = scope  # the cluster's name: envelopes of other scopes are refused
        self.incarnation = incarnation
        self.started = now
        self.info = info or {}
        counters = self.counters = dict.fromkeys(COUNTERS, 0)
        self.errors: dict[str, int] = {}
        self.outbox = Outbox()
        self.overlay = Overlay(node)
        detector = Swim(node, incarnation, config.detector())
        self.membership = membership = Membership(
            node, incarnation, endpoint, detector, seeds, config.membership()
        )
        membership.scope_digest = lambda peer: self.groups.scope_digest(peer)
        endpoint_of = membership.endpoint_of
        ring = self.ring = HashRing([node])
        history = self.history = HistoryStore(Retention(config.history, config.history_ttl))
        replication = Replication(node, ring, history, config.replicas)
        self.sequencer = Sequencer(incarnation // 1_000_000, now, history.last_epoch, node)
        self.routes = Routes(endpoint_of)
        self.flow = FlowControl(config.flow_window)
        self.acks = AckRelay(self.routes, config.ack_timeout)
        self.copies = CopyPacing()
        interest = InterestCache(node, ring, self.overlay, endpoint_of, history, replication)
        self.queues = QueueGroups(
            node, self.overlay, lambda actions, out: self.groups.apply(actions, out),
            endpoint_of, self.flow, counters, self.bad_input, config.max_groups,
        )  # fmt: skip
        self.owner = Owner(
            node, ring, self.sequencer, history, replication, interest, self.routes,
            self.flow, counters, config.ack_timeout, config.idle_topic_ttl, queues=self.queues,
        )  # fmt: skip
        self.router = Router(
            node, ring, endpoint_of, self.owner, self.acks, self.flow, history, replication,
            counters, self.bad_input,
        )  # fmt: skip
        self.consumers = self.owner.consumers = Consumers(
            node, ring, self.overlay, history, self.queues, endpoint_of, self.flow, replication,
            lambda topic, batch, now, out: self.router.publish(topic, 1, batch, None, 0, now, out),
            self.bad_input, config.request_timeout,
        )  # fmt: skip
        self.handoff = HistoryHandoff(
            node, ring, endpoint_of, history, replication, self.sequencer, self.bad_input,
            self.consumers.absorbed,
        )  # fmt: skip
        self.barriers = Barriers(node, ring, membership.alive, endpoint_of, config.request_timeout)
        self.fetches = HistoryFetches(
            node, ring, endpoint_of, history, counters, config.request_timeout
        )
        self.watches = Watches(ring, self.overlay)
        self.groups = Groups(
            self.overlay, endpoint_of, self.barriers, self.watches, counters, self.bad_input,
            config.max_groups, config.max_topic,
        )  # fmt: skip
        self.drain = Drain(
            node, ring, config.replicas + 1, history, self.handoff, self.barriers,
            lambda: len(self.acks),
        )  # fmt: skip
        self.losses = SubscriberLosses()  # what local subscribers lost, per topic
        self.clients = ClientApi(
            self.router, self.watches, self.barriers, self.fetches,
            lambda now: status(self, now), self.info, counters, self.bad_input,
            PublishDecoder(config.max_payload, config.max_topic), self.flow, self.losses,
            rate=PublishRate(config.max_publish_rate) if config.max_publish_rate else None,
            queues=self.queues, consumers=self.consumers,
            drain=lambda client, ref, op, now, out: self.start_drain(
                now, op.timeout, (client, ref)
            ),
        )  # fmt: skip
        self._parts: tuple[Part, ...] = (
            self.groups, self.acks, self.owner, self.flow, self.handoff, self.barriers,
            self.fetches, self.watches, self.consumers,
        )  # fmt: skip
        self._handlers: dict[type[NodeMessage], Handler] = {
            gossip.Sync: self.groups.on_counts,
            gossip.SyncPart: self.groups.on_counts,
            gossip.Update: self.groups.on_counts,
            gossip.Resync: self.groups.on_resync,
            requests.Barrier: self.barriers.on_barrier,
            requests.BarrierOk: self.barriers.on_barrier_ok,
            requests.History: self.fetches.on_history,
            requests.HistoryRep: self.fetches.on_history_rep,
            data.Forward: self.router.on_forward,
            data.Close: self.router.on_close,
            data.Configure: self.router.on_configure,
            data.Fanout: self.router.on_fanout,
            data.Closed: self.router.on_closed,
            data.Store: self.router.on_store,
            data.Queued: self.queues.on_queued,
            **self.consumers.handlers(),
            data.Consumed: self.router.on_consumed,
            data.Stored: self.owner.on_stored,
            data.Handoff: self.handoff.on_handoff,
            data.Ack: self.acks.on_ack,
            data.Nack: self.acks.on_nack,
        }
        self.refusal: str | None = None  # set: this node must stop (its id is taken)
        self._ticked = now  # when ``tick`` last ran its timers

    # ------------------------------------------------------------------ IO interface

    def take(self, now: float) -> Outbox:
        """Hand the accumulated actions to the IO layer and start a fresh outbox."""
        out = self.outbox
        self.consumers.release(now, out)
        if self.clients.held:
            self.clients.release(now, out)
        self.router.confirm(out, all_=False)
        self.routes.pacing.release(now, out)
        self.copies.release(now, out)
        self.counters["delivered"] += sum([delivery[3] or 1 for delivery in out.deliveries])
        self.counters["flow_paused"] += self.flow.report(out)
        self.outbox = Outbox()
        return out

    @property
    def paused(self) -> bool:
        """Saturated (flow.py): client publishes are held (clients.py)."""
        return self.flow.saturated

    @property
    def clients_held_full(self) -> bool:
        """The IO layer must stop reading client frames until held ones go on."""
        return self.clients.held_full

    def joined(self, now: float) -> bool:
        """In its cluster (systemd's READY=1): a peer is alive, or there is no seed to
        wait for, or none answered within ``peer_timeout`` (it is alone)."""
        membership = self.membership
        waited = now - self.started >= self.config.peer_timeout
        return bool(membership.alive()) or not membership.seeds or waited

    def summary(self) -> str:
        """One line for systemd's STATUS=: peers, topics, local groups."""
        return summary(self)

    @property
    def pending(self) -> int:
        """Publishes waiting for an answer: from the next hop, or from replicas."""
        return len(self.acks) + self.owner.replication.pending

    def start(self, now: float) -> None:
        self._membership(self.membership.start(now), now, self.outbox)

    def tick(self, now: float) -> None:
        """Run every timer that is due: membership, then each part's, then owed
        confirmations. Woken only for paced acknowledgements or copies, do nothing:
        ``take`` lets them go, and a full tick would send every owed confirmation, a
        frame to each peer per pacing interval."""
        if now < self._timers_due():
            return
        self._ticked = now
        out = self.outbox
        self._membership(self.membership.tick(now), now, out)
        for part in self._parts:
            part.expire(now, out)
        self.router.confirm(out, all_=True)

    def next_deadline(self) -> float:
        """When ``tick`` must run next at the latest (or ``take``, for what is paced)."""
        return min(self._timers_due(), self.routes.pacing.due, self.copies.due)

    def _timers_due(self) -> float:
        return min(self.membership.next_deadline(), self._ticked + self.config.heartbeat_interval)

    def start_drain(
        self, now: float, timeout: float | None = None, requester: tuple[bytes, int] | None = None
    ) -> None:
        """Refuse client publishes from now on and hand the history over (drain.py)."""
        self.clients.draining = True
        timeout = self.config.drain_timeout if timeout is None else timeout
        self.drain.start(now, timeout, self.outbox, requester)

    def drained(self, now: float) -> bool:
        """Whether a drain that began may end: then the node leaves."""
        return self.drain.done(now, self.outbox)

    def leave(self, now: float) -> None:
        """Graceful shutdown: tell every peer we are leaving."""
        self._membership(self.membership.leave(now), now, self.outbox)

    def status(self, now: float) -> dict[str, Any]:
        """What ``zdps status`` shows (status.py)."""
        return status(self, now)

    def bad_input(self, code: str, message: str) -> None:
        """Count bad input and hand it to the IO layer for (rate-limited) logging."""
        self.count_error(code)
        self.outbox.error(code, message)

    def subscribers_lost(self, lost: dict[str, int]) -> int:
        """Local SUBs began losing messages (topic -> times, the IO layer saw their
        queues full); returns the counter ``subscriber_queue_full`` now."""
        self.counters["subscriber_queue_full"] += self.losses.add(lost)
        return self.counters["subscriber_queue_full"]

    def count_error(self, code: str) -> None:
        """Count bad input the IO layer logs itself (refused connections)."""
        self.errors[code] = self.errors.get(code, 0) + 1

    def bad_client_frame(self, client: bytes, message: str) -> None:
        """A client frame the IO layer could not even hand over (not one ZeroMQ frame)."""
        self.bad_input(E_MALFORMED, f"API frame from client {client.hex()}: {message}")
        self.outbox.fail(client, 0, E_MALFORMED, message)

    def seed_connection(self, endpoint: str, answer: str) -> None:
        """What the IO layer saw of its connection to a seed (``seeds.CONNECTION``)."""
        self.membership.dialing.connection(endpoint, answer)

    def client_gone(self, client: bytes) -> None:
        """A client's connection vanished: drop what we keep for it."""
        self.watches.client_gone(client)
        self.queues.client_gone(client, self.outbox)
        self.routes.pacing.forget(client)
        if self.clients.rate is not None:
            self.clients.rate.forget(client)

    # ------------------------------------------------------------------ inputs

    def on_cluster_frame(self, frame: bytes, now: float, peer: str | None = None) -> None:
        """One envelope from a peer's DEALER, received on our cluster ROUTER; ``peer`` is
        the node its connection's CURVE key names (None without CURVE)."""
        try:
            scope, sender, incarnation, messages = decode_envelope(frame)
        except ProtocolError as exc:
            self.bad_input(exc.code, f"cluster frame: {exc.message}")
            if exc.code == E_BAD_VERSION:  # a hello in it is answered: why not
                self._membership(self.membership.compat.other_version(frame, now), now, self.outbox)
            return
        if peer is not None and sender != peer:
            self.bad_input(E_SPOOFED, f"an envelope from {peer}'s key says it is from {sender!r}")
            return
        if scope != self.scope:
            self.bad_input(E_WRONG_SCOPE, f"{sender} is in scope {scope!r}, not ours")
            return
        membership, out = self.membership, self.outbox
        accepted = membership.is_alive(sender, incarnation)
        if accepted:
            membership.heard(sender, now)
        for raw in messages:
            try:
                if message_kind(raw) in MEMBERSHIP_KINDS:
                    message = decode_message(raw)
                    self._membership(membership.handle(sender, incarnation, message, now), now, out)
                    accepted = membership.is_alive(sender, incarnation)
                    if accepted and type(message) is gossip.Ping:
                        self.groups.check_digest(sender, message, out)
                elif not accepted:
                    self.counters["ignored_unknown_peer"] += 1
                else:
                    message = decode_message(raw)
                    if isinstance(message, EntryList) and message.rejects:
                        self._rejected(sender, message, out)
                    self._handlers[type(message)](sender, message, now, out)
            except ProtocolError as exc:
                self.bad_input(exc.code, f"message from {sender}: {exc.message}")

    def on_subscription(self, subscription: bytes, subscribed: bool, now: float) -> bool:
        """A local SUB connection took or dropped a subscription; False if it does not
        count (``Groups.on_subscription``)."""
        return self.groups.on_subscription(subscription, subscribed, now, self.outbox)

    def on_client_frame(
        self, client: bytes, frame: bytes, now: float, user: str | None = None
    ) -> None:
        """One API frame from the client whose connection is identified by ``client``
        (and whose CURVE key is named ``user``, where permissions apply)."""
        self.clients.on_frame(client, frame, now, self.outbox, user)

    # ------------------------------------------------------------------ glue

    def _rejected(self, sender: str, message: EntryList, out: Outbox) -> None:
        """Bad entries of a batch: counted, refused under the ack id they name, processed."""
        for ack_id, why, _count in message.rejects:
            self.bad_input(E_MALFORMED, f"{message.KIND} entry from {sender}: {why}")
            if ack_id:
                self.routes.refuse(out, (sender, ack_id), E_MALFORMED, why)
        if message.DATA:
            self.flow.processed(sender, sum([reject.count for reject in message.rejects]))

    def _membership(self, actions: list[acts.Action], now: float, out: Outbox) -> None:
        ring_changed = healed = False
        old_nodes = self.ring.nodes
        went_down: set[str] = set()
        for action in actions:
            if isinstance(action, acts.Send):
                (out.probe if action.probe else out.send)(action.endpoint, action.message)
            elif isinstance(action, acts.Disconnect):
                out.disconnect(action.endpoint)
            elif isinstance(action, acts.PeerUp):
                if self.ring.add(action.node):
                    ring_changed = True
                    self.counters["peers_joined"] += 1
                    out.note("peer_up", node=action.node, endpoint=action.endpoint)
                healed |= action.healed
                self.groups.peer_up(action.node, out, action.parts)
            elif isinstance(action, acts.PeerDown):
                if self.ring.remove(action.node):
                    ring_changed = True
                    went_down.add(action.node)
                self.counters["peers_lost"] += 1
                level = "warning" if action.reason == "dead" else "info"
                out.note("peer_down", level, node=action.node, reason=action.reason, why=action.why)
                for part in self._parts:  # groups first: the overlay drops its members
                    part.peer_down(action.node, out)
                self.router.resume(now, out)
            elif isinstance(action, acts.Clash):
                self._clash(action, now, out)
            elif isinstance(action, acts.Refused):
                self.bad_input(action.code, action.message)
            else:
                out.log.append(action)
        if ring_changed:
            # A node that restarted (down and up again in this batch) is back without its
            # history: hand it over as to a node that joined.
            old_nodes = old_nodes - (went_down & self.ring.nodes)
            for part in self._parts:
                part.ring_changed(old_nodes, now, out)
        if healed:
            self.owner.healed()

    def _clash(self, clash: acts.Clash, now: float, out: Outbox) -> None:
        """Another process uses our id: the one started later refuses, if just started
        and the other proved it runs there (not a stranger's word, clashes.py)."""
        self.counters["id_clashes"] += clash.first
        refusal, action = verdict(clash, self.node, self.incarnation, now - self.started)
        self.refusal = self.refusal or refusal
        out.note("node_id_clash", "error", node=self.node, other=clash.endpoint, action=action)
