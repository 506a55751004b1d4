"""One zdps node as a sans-IO state machine: events and the time in, an Outbox out.

``NodeCore`` ties the protocol cores together: membership decides who the live peers
are; every live peer is on the ring and in the scope overlay; the router moves
publishes. Inputs are cluster frames, local XPUB (un)subscriptions, client API frames
and timer ticks, each with the current monotonic time. The IO layer owns the sockets
and drains ``take()`` after every wake-up; tests and the simulator drive the same
object with no sockets at all.
"""

from __future__ import annotations

import contextlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from zdps.core import membership as mem
from zdps.core.config import CoreConfig
from zdps.core.history import HistoryStore, Retention
from zdps.core.outbox import Outbox
from zdps.core.replication import Replication
from zdps.core.ring import HashRing
from zdps.core.router import Router, Sequencer
from zdps.core.scope import MemberEvent, NotJoined, Scope, ScopeSend
from zdps.core.swim import SWIM_KINDS, Swim, SwimConfig
from zdps.topics import (
    SYNC_PREFIX,
    InvalidTopic,
    check_topic,
    group_topic,
    is_control_subscription,
    is_exact,
    is_valid_group,
)
from zdps.wire import ACK as PEER_ACK
from zdps.wire import (
    API_EVENT,
    API_NACK,
    API_PUBLISH,
    API_REPLY,
    API_REQUEST,
    BARRIER,
    BARRIER_OK,
    BYE,
    CLOSE,
    CLOSED,
    CONFIGURE,
    CONSUMED,
    E_INVALID_TOPIC,
    E_MALFORMED,
    E_NO_ROUTE,
    E_OWNER_LOST,
    E_TIMEOUT,
    E_TOO_LARGE,
    E_UNKNOWN_KIND,
    E_UNKNOWN_OP,
    E_WRONG_SCOPE,
    FANOUT,
    FORWARD,
    HANDOFF,
    HELLO,
    HISTORY,
    HISTORY_REPLY,
    LEVEL_OWNER,
    LEVEL_REPLICATED,
    NACK,
    PEERS,
    PING,
    RESYNC,
    STORE,
    STORED,
    SYNC,
    UPDATE,
    ProtocolError,
    decode_api,
    decode_envelope,
)
from zdps.wire.limits import HISTORY_PAGE, HISTORY_PAGE_BYTES, MAX_HISTORY, MAX_HISTORY_TTL

COUNTERS = (
    "published",
    "routed_to_owner",
    "owned_published",
    "fanout_sent",
    "fanout_received",
    "delivered",
    "peers_joined",
    "peers_lost",
    "ignored_unknown_peer",
    "deferred",
    "flow_paused",
    "resyncs_asked",
    "replica_stored",
    "history_served",
)

_MEMBERSHIP_KINDS = frozenset({HELLO, PEERS, PING, BYE, *SWIM_KINDS})
_BAD_INPUT = (ProtocolError, ValueError, TypeError, KeyError, IndexError, AttributeError)


@dataclass(slots=True)
class _Fetch:
    """A client's history request forwarded to the topic's owner."""

    client: bytes
    ref: int
    owner: str
    deadline: float


@dataclass(slots=True)
class _Barrier:
    client: bytes
    ref: int
    groups: list[bytes]
    waiting: set[str]
    deadline: float
    confirmed: set[str] = field(default_factory=set)


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
        self.config = config or CoreConfig()
        self.node = node
        self.scope_name = scope
        self.incarnation = incarnation
        self.started = now
        self.info = info or {}
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.errors: dict[str, int] = {}
        self.outbox = Outbox()
        self.membership = mem.Membership(
            node,
            incarnation,
            endpoint,
            Swim(
                node,
                incarnation,
                SwimConfig(
                    probe_interval=self.config.probe_interval,
                    probe_timeout=self.config.probe_timeout,
                    indirect_probes=self.config.indirect_probes,
                    suspicion_mult=self.config.suspicion_mult,
                    suspicion_max_mult=self.config.suspicion_max_mult,
                    silence_timeout=self.config.peer_timeout,
                ),
            ),
            seeds,
            mem.MembershipConfig(
                heartbeat_interval=self.config.heartbeat_interval,
                join_timeout=self.config.peer_timeout,
                tombstone_ttl=self.config.peer_timeout + self.config.heartbeat_interval,
            ),
        )
        self.scope = Scope(node)
        self.membership.ping_extras = lambda: {"scope": self.scope.local_digest()}
        self.ring = HashRing([node])
        self.history = HistoryStore(Retention(self.config.history, self.config.history_ttl))
        self.router = Router(
            node,
            self.ring,
            self.scope,
            self.membership.endpoint_of,
            self.outbox,
            self.counters,
            Sequencer(incarnation // 1_000_000, now, self.history.last_epoch),
            self.history,
            Replication(node, self.ring, self.history, self.config.replicas),
            ack_timeout=self.config.ack_timeout,
            flow_window=self.config.flow_window,
        )
        self._handlers = {
            SYNC: self._on_scope,
            UPDATE: self._on_scope,
            BARRIER: self._on_barrier,
            BARRIER_OK: self._on_barrier_ok,
            FORWARD: self._on_forward,
            CLOSE: self._on_close,
            FANOUT: self._on_fanout,
            CLOSED: self._on_closed,
            CONSUMED: self._on_consumed,
            RESYNC: self._on_resync,
            STORE: self._on_store,
            STORED: lambda sender, m, _n: self.router.on_stored(sender, m[1]),
            HANDOFF: lambda sender, m, now: self.router.on_handoff(sender, m[1], now),
            CONFIGURE: self._on_configure,
            HISTORY: self._on_history,
            HISTORY_REPLY: self._on_history_reply,
            PEER_ACK: lambda _s, m, _n: self.router.on_ack(m[1]),
            NACK: lambda _s, m, _n: self.router.on_nack(m[1]),
        }
        self._ops = {
            "members": self._op_members,
            "watch": self._op_watch,
            "unwatch": self._op_unwatch,
            "ready": self._op_ready,
            "delete": self._op_delete,
            "create": self._op_create,
            "history": self._op_history,
            "status": lambda client, ref, _args, now: self._reply(client, ref, self.status(now)),
            "info": lambda client, ref, _args, _now: self._reply(client, ref, self.info),
        }
        self._barriers: dict[int, _Barrier] = {}
        self._next_barrier = 1
        self._tokens_seen: dict[str, float] = {}
        self._ready_waiting: dict[str, tuple[bytes, int, list[bytes], float]] = {}
        self._watches: dict[tuple[bytes, int], str] = {}
        self._valid_topics: set[str] = set()  # topics that passed check_topic (bounded)
        self._deferred: deque[tuple[str, list]] = deque()  # forwards held while saturated
        self._next_idle_sweep = now + self.config.idle_topic_ttl / 10
        self._fetches: dict[int, _Fetch] = {}  # history requests waiting for an owner
        self._next_fetch = 1
        self._next_history_sweep = now + 1.0

    # ------------------------------------------------------------------ IO interface

    def take(self) -> Outbox:
        """Hand the accumulated actions to the IO layer and start a fresh outbox."""
        self.router.confirm()
        out = self.outbox
        self.outbox = self.router.outbox = Outbox()
        return out

    def start(self, now: float) -> None:
        self._membership(self.membership.start(now), now)

    def tick(self, now: float) -> None:
        """Run timers: membership, ack expiry, barrier and token expiry."""
        self._membership(self.membership.tick(now), now)
        self.router.expire(now)
        self.router.confirm(everything=True)
        if now >= self._next_idle_sweep:
            self._next_idle_sweep = now + self.config.idle_topic_ttl / 10
            self.router.sequencer.forget_idle(now, self.config.idle_topic_ttl)
        if now >= self._next_history_sweep:
            self._next_history_sweep = now + 1.0
            self.history.expire(now)
        for fetch_id, fetch in list(self._fetches.items()):
            if fetch.deadline <= now:
                del self._fetches[fetch_id]
                self.fail(fetch.client, fetch.ref, E_TIMEOUT, f"owner {fetch.owner} did not answer")
        for barrier_id, barrier in list(self._barriers.items()):
            if barrier.deadline <= now:
                del self._barriers[barrier_id]
                self.fail(barrier.client, barrier.ref, E_TIMEOUT, "owners did not confirm")
        for token, (client, ref, _, deadline) in list(self._ready_waiting.items()):
            if deadline <= now:
                del self._ready_waiting[token]
                self.fail(client, ref, E_TIMEOUT, "the subscription never reached the node")
        for token, seen in list(self._tokens_seen.items()):
            if seen + self.config.barrier_timeout <= now:
                del self._tokens_seen[token]

    def next_deadline(self, now: float) -> float:
        """When ``tick`` must run next at the latest."""
        return min(self.membership.next_deadline(), now + self.config.heartbeat_interval)

    def leave(self, now: float) -> None:
        """Graceful shutdown: tell every peer we are leaving."""
        self._membership(self.membership.leave(now), now)

    def bad_input(self, code: str, message: str) -> None:
        """Count bad input and hand it to the IO layer for (rate-limited) logging."""
        self.errors[code] = self.errors.get(code, 0) + 1
        self.outbox.error(code, message)

    def client_gone(self, client: bytes) -> None:
        """A client's connection vanished: drop what we keep for it."""
        for key in [k for k in self._watches if k[0] == client]:
            del self._watches[key]
            self.scope.demonitor(key)

    # ------------------------------------------------------------------ cluster input

    def on_cluster_frame(self, frame: bytes, now: float) -> None:
        """One envelope from a peer's DEALER, received on our cluster ROUTER."""
        try:
            scope, sender, incarnation, messages = decode_envelope(frame)
        except ProtocolError as exc:
            self.bad_input(exc.code, f"cluster frame: {exc.message}")
            return
        if scope != self.scope_name:
            self.bad_input(E_WRONG_SCOPE, f"{sender} is in scope {scope!r}, not ours")
            return
        accepted = self.membership.is_alive(sender, incarnation)
        if accepted:
            self.membership.heard(sender, now)
        for message in messages:
            try:
                if not isinstance(message, list) or not message:
                    raise ProtocolError(E_MALFORMED, "a message is not a non-empty array")
                kind = message[0]
                if not isinstance(kind, str):
                    raise ProtocolError(E_MALFORMED, "a message kind is not a string")
                if kind in _MEMBERSHIP_KINDS:
                    actions = self.membership.handle(sender, incarnation, message, now)
                    self._membership(actions, now)
                    accepted = self.membership.is_alive(sender, incarnation)
                    if kind == PING and accepted:
                        self._check_scope_digest(sender, message[1])
                elif not accepted:
                    self.counters["ignored_unknown_peer"] += 1
                elif kind in self._handlers:
                    self._handlers[kind](sender, message, now)
                else:
                    raise ProtocolError(E_UNKNOWN_KIND, f"unknown message kind {kind[:32]!r}")
            except _BAD_INPUT as exc:
                self.bad_input(_code(exc), f"message from {sender}: {_text(exc)}")

    def _on_scope(self, sender: str, message: list, now: float) -> None:
        self._scope(self.scope.handle(sender, message))

    def _check_scope_digest(self, sender: str, ping: dict) -> None:
        """A peer's memberships differ from what we hold for it: ask it for a sync."""
        digest = ping.get("scope")
        if isinstance(digest, str) and digest != self.scope.peer_digest(sender):
            endpoint = self.membership.endpoint_of(sender)
            if endpoint is not None:
                self.outbox.send(endpoint, [RESYNC, {}])
                self.counters["resyncs_asked"] += 1

    def _on_resync(self, sender: str, message: list, now: float) -> None:
        self._scope(self.scope.peer_up(sender))

    def _on_barrier(self, sender: str, message: list, now: float) -> None:
        endpoint = self.membership.endpoint_of(sender)
        if endpoint is not None:
            self.outbox.send(endpoint, [BARRIER_OK, message[1]])

    def _on_barrier_ok(self, sender: str, message: list, now: float) -> None:
        barrier = self._barriers.get(message[1])
        if barrier is not None and sender in barrier.waiting:
            barrier.waiting.discard(sender)
            barrier.confirmed.add(sender)
            self._finish_barrier(message[1], barrier)

    @property
    def paused(self) -> bool:
        """Saturated (see router.py): the IO layer must stop reading client publishes."""
        return self.router.saturated

    def _on_fanout(self, sender: str, message: list, now: float) -> None:
        self.router.on_fanout(message[1])
        self.router.processed(sender, len(message[1]))

    def _on_closed(self, sender: str, message: list, now: float) -> None:
        self.router.on_closed(message[1])
        self.router.processed(sender, len(message[1]))

    def _on_consumed(self, sender: str, message: list, now: float) -> None:
        was_paused = self.paused
        self.router.on_consumed(sender, message[1])
        if was_paused and not self.paused:
            self._resume(now)

    def _resume(self, now: float) -> None:
        """Route forwards deferred while saturated, oldest first, until saturated again."""
        deferred = self._deferred
        while deferred and not self.paused:
            sender, entries = deferred.popleft()
            self._route_forwards(sender, entries, now)

    def _on_forward(self, sender: str, message: list, now: float) -> None:
        if not isinstance(message[1], list):
            raise ProtocolError(E_MALFORMED, "fwd carries a list of entries")
        if self._deferred or self.paused:
            self._deferred.append((sender, message[1]))
            self.counters["deferred"] += len(message[1])
        else:
            self._route_forwards(sender, message[1], now)

    def _route_forwards(self, sender: str, entries: list, now: float) -> None:
        publish = self.router.publish
        self.router.processed(sender, len(entries))
        for entry in entries:
            if (
                type(entry) is list
                and 4 <= len(entry) <= 5
                and type(entry[0]) is str
                and type(entry[1]) is bytes
                and type(entry[2]) is int
                and type(entry[3]) is int
            ):
                topic, payload, ack_id, hops = entry[:4]
                level = entry[4] if len(entry) == 5 else LEVEL_OWNER
                publish(topic, payload, (sender, ack_id) if ack_id else None, hops, now, level)
            else:
                self._bad_entry(
                    sender, entry, "forward entries are [topic, payload, ack, hops, level?]"
                )

    def _on_close(self, sender: str, message: list, now: float) -> None:
        self.router.processed(sender, len(message[1]))
        for entry in message[1]:
            if type(entry) is list and len(entry) == 3 and type(entry[0]) is str:
                topic, ack_id, hops = entry
                self.router.close(topic, (sender, ack_id) if ack_id else None, hops, now)
            else:
                self._bad_entry(sender, entry, "close entries are [topic, ack, hops]")

    def _on_store(self, sender: str, message: list, now: float) -> None:
        self.router.on_store(sender, message[1], now)
        self.router.processed(sender, len(message[1]))

    def _on_configure(self, sender: str, message: list, now: float) -> None:
        self.router.processed(sender, len(message[1]))
        for entry in message[1]:
            try:
                topic, count, age, ack_id, hops = entry
                if type(topic) is not str or type(ack_id) is not int or type(hops) is not int:
                    raise ProtocolError(E_MALFORMED, "bad configure entry")
                retention = _retention(count, age)
            except (ProtocolError, ValueError, TypeError):
                why = "configure entries are [topic, count, age, ack, hops]"
                self._bad_entry(sender, entry, why)
                continue
            route = (sender, ack_id) if ack_id else None
            self.router.configure(topic, retention, route, hops, now)

    def _on_history(self, sender: str, message: list, now: float) -> None:
        fetch_id, args = message[1]
        result = self._history_query(args)
        endpoint = self.membership.endpoint_of(sender)
        if endpoint is not None:
            self.outbox.send(endpoint, [HISTORY_REPLY, [fetch_id, result]])

    def _on_history_reply(self, sender: str, message: list, now: float) -> None:
        fetch_id, result = message[1]
        fetch = self._fetches.get(fetch_id)
        if fetch is not None and fetch.owner == sender:
            del self._fetches[fetch_id]
            self._reply(fetch.client, fetch.ref, result)

    def _bad_entry(self, sender: str, entry: object, why: str) -> None:
        """Count one bad entry of a batch and refuse it if it asked for an ack."""
        self.bad_input(E_MALFORMED, f"from {sender}: {why}")
        if type(entry) is list and len(entry) > 2 and type(entry[-2]) is int and entry[-2]:
            self.router.refuse((sender, entry[-2]), E_MALFORMED, why)

    # ------------------------------------------------------------------ local subscribers

    def on_subscription(self, subscription: bytes, subscribed: bool, now: float) -> None:
        """A local SUB (un)subscribed, as reported by the XPUB."""
        if is_control_subscription(subscription):
            if subscribed and subscription.startswith(SYNC_PREFIX):
                self._token_seen(subscription[len(SYNC_PREFIX) :].decode("utf-8", "replace"), now)
            return
        if not is_valid_group(subscription):
            self.bad_input(E_INVALID_TOPIC, f"subscription {subscription[:64]!r} is not a topic")
            return
        if subscribed:
            self._scope(self.scope.join(subscription))
        else:
            # An unsubscribe may concern a subscription made before this node started.
            with contextlib.suppress(NotJoined):
                self._scope(self.scope.leave(subscription))

    # ------------------------------------------------------------------ client API

    def on_client_frame(self, client: bytes, frame: bytes, now: float) -> None:
        """One API frame from the client whose connection is identified by ``client``."""
        try:
            fields = decode_api(frame)
            kind = fields[0]
            if kind == API_PUBLISH:
                if len(fields) != 2 or not isinstance(fields[1], list):
                    raise ProtocolError(E_MALFORMED, "a publish is [1, 'pub', [entries]]")
                self.on_client_publish(client, fields[1], now)
            elif kind == API_REQUEST:
                self.on_client_request(client, fields[1:], now)
            else:
                raise ProtocolError(E_UNKNOWN_OP, f"unknown API message {kind[:32]!r}")
        except ProtocolError as exc:
            self.bad_input(exc.code, f"API: {exc.message}")
            self.fail(client, 0, exc.code, exc.message)

    def on_client_publish(self, client: bytes, entries: list, now: float) -> None:
        """Publishes from a client: ``[[ref, topic, payload], ...]``; ref 0 wants no ack."""
        publish = self.router.publish
        limit = self.config.max_payload
        valid = self._valid_topics
        count = 0
        for entry in entries:
            try:
                ref, topic, payload, *more = entry
                level = more[0] if more else LEVEL_OWNER
                if more and (len(more) > 1 or level not in (LEVEL_OWNER, LEVEL_REPLICATED)):
                    raise ProtocolError(E_MALFORMED, "a publish is [ref, topic, payload, level?]")
                if type(ref) is not int or ref < 0:
                    raise ProtocolError(E_MALFORMED, "a publish ref is an integer >= 0")
                if topic not in valid:
                    check_topic(topic)
                    if len(valid) > 100_000:
                        valid.clear()
                    valid.add(topic)
                if type(payload) is not bytes:
                    raise ProtocolError(E_MALFORMED, "payload must be binary")
                if len(payload) > limit:
                    raise ProtocolError(
                        E_TOO_LARGE, f"payload is {len(payload)} bytes, the limit is {limit}"
                    )
            except (*_BAD_INPUT, InvalidTopic) as exc:
                code = _code(exc)
                self.bad_input(code, f"publish from client: {_text(exc)}")
                if isinstance(entry, list) and entry and isinstance(entry[0], int) and entry[0]:
                    self.outbox.batch_reply(client, API_NACK, [entry[0], code, _text(exc)])
                continue
            count += 1
            publish(topic, payload, (client, ref) if ref else None, 0, now, level)
        self.counters["published"] += count

    def on_client_request(self, client: bytes, fields: list, now: float) -> None:
        """A request ``[ref, op, args]``; the answer is a reply (or events) to ``client``."""
        ref = fields[0] if fields and type(fields[0]) is int and fields[0] > 0 else 0
        try:
            if len(fields) != 3 or not isinstance(fields[2], dict) or ref <= 0:
                raise ProtocolError(E_MALFORMED, "a request is [ref > 0, op, {args}]")
            op, args = fields[1], fields[2]
            handler = self._ops.get(op) if isinstance(op, str) else None
            if handler is None:
                raise ProtocolError(E_UNKNOWN_OP, f"unknown request {str(op)[:32]!r}")
            handler(client, ref, args, now)
        except (*_BAD_INPUT, InvalidTopic) as exc:
            self.bad_input(_code(exc), f"request from client: {_text(exc)}")
            self.fail(client, ref, _code(exc), _text(exc))

    def _op_members(self, client: bytes, ref: int, args: dict, now: float) -> None:
        self._reply(client, ref, self.members(args["topic"]))

    def _op_watch(self, client: bytes, ref: int, args: dict, now: float) -> None:
        topic = args["topic"]
        check_topic(topic)
        if (client, ref) not in self._watches:
            self.scope.monitor_scope((client, ref))
        self._watches[(client, ref)] = topic
        self._reply(client, ref, self.members(topic))

    def _op_unwatch(self, client: bytes, ref: int, args: dict, now: float) -> None:
        key = (client, args["ref"])
        self._watches.pop(key, None)
        self._reply(client, ref, self.scope.demonitor(key))

    def _op_ready(self, client: bytes, ref: int, args: dict, now: float) -> None:
        """Answer once the groups are visible at their owners (see ``SYNC_PREFIX``)."""
        token, groups = args["token"], args["groups"]
        if not isinstance(token, str) or not isinstance(groups, list):
            raise ProtocolError(E_MALFORMED, "ready needs a text token and a list of groups")
        if not all(isinstance(g, bytes) and is_valid_group(g) for g in groups):
            raise ProtocolError(E_MALFORMED, "groups must be valid subscriptions")
        self._ready_waiting[token] = (client, ref, groups, now + self.config.barrier_timeout)
        if token in self._tokens_seen:
            self._token_seen(token, now)

    def _op_delete(self, client: bytes, ref: int, args: dict, now: float) -> None:
        topic = args["topic"]
        check_topic(topic)
        self.router.close(topic, (client, ref), 0, now)

    def _op_create(self, client: bytes, ref: int, args: dict, now: float) -> None:
        topic = args["topic"]
        check_topic(topic)
        retention = _retention(args["history"], args["ttl"])
        self.router.configure(topic, retention, (client, ref), 0, now)

    def _op_history(self, client: bytes, ref: int, args: dict, now: float) -> None:
        """Stored messages of a topic, from its owner (docs/PROTOCOL.md §7.9)."""
        check_topic(args["topic"])
        owner = self.ring.owner(args["topic"])
        if owner == self.node:
            self._reply(client, ref, self._history_query(args))
            return
        endpoint = self.membership.endpoint_of(owner) if owner else None
        if endpoint is None:
            self.fail(client, ref, E_NO_ROUTE, f"no connection to the owner {owner}")
            return
        fetch_id = self._next_fetch
        self._next_fetch += 1
        deadline = now + self.config.barrier_timeout
        self._fetches[fetch_id] = _Fetch(client, ref, owner, deadline)
        self.outbox.send(endpoint, [HISTORY, [fetch_id, args]])

    def _history_query(self, args: dict) -> dict[str, Any]:
        """Answer a history request from what this node stores."""
        topic, since, limit = args["topic"], args.get("since"), args.get("limit", HISTORY_PAGE)
        if type(limit) is not int or not 1 <= limit <= HISTORY_PAGE:
            raise ProtocolError(E_MALFORMED, f"limit is 1 to {HISTORY_PAGE}")
        if since is not None:
            if type(since) is not int or since < 0:
                raise ProtocolError(E_MALFORMED, "since is a seq >= 0")
            newest = self.history.newest(topic)[0]
            after = (newest, since - 1) if since else (0, 0)
        else:
            after = _position(args.get("after"), "after")
        until = _position(args["until"], "until") if args.get("until") is not None else None
        entries, size, more = [], 0, False
        for entry in self.history.fetch(topic, after[0], after[1], limit + 1):
            if until is not None and (entry.epoch, entry.seq) >= until:
                break
            if len(entries) == limit or (
                entries and size + len(entry.payload) > HISTORY_PAGE_BYTES
            ):
                more = True
                break
            entries.append([entry.epoch, entry.seq, entry.payload])
            size += len(entry.payload)
        self.counters["history_served"] += len(entries)
        return {"topic": topic, "node": self.node, "entries": entries, "more": more}

    def _token_seen(self, token: str, now: float) -> None:
        self._tokens_seen[token] = now
        waiting = self._ready_waiting.pop(token, None)
        if waiting is None:
            return
        client, ref, groups, deadline = waiting
        barrier_id = self._next_barrier
        self._next_barrier += 1
        barrier = self._barriers[barrier_id] = _Barrier(client, ref, groups, set(), deadline)
        self._ask_owners(barrier_id, barrier)

    def _ask_owners(self, barrier_id: int, barrier: _Barrier) -> None:
        """Send the barrier to every owner of its groups not yet asked; finish if none left.

        Called again when an owner dies: its topics' new owners are asked in turn (our
        ``update`` reached them before the barrier does, on the same ordered link).
        """
        owners: set[str] = set()
        for group in barrier.groups:
            if is_exact(group):
                owners.add(self.ring.owner(group_topic(group)) or self.node)
            else:
                owners.update(self.membership.alive())
        for owner in owners - barrier.confirmed - barrier.waiting - {self.node}:
            endpoint = self.membership.endpoint_of(owner)
            if endpoint is not None:
                barrier.waiting.add(owner)
                self.outbox.send(endpoint, [BARRIER, barrier_id])
        self._finish_barrier(barrier_id, barrier)

    def _finish_barrier(self, barrier_id: int, barrier: _Barrier) -> None:
        if not barrier.waiting:
            del self._barriers[barrier_id]
            self._reply(client=barrier.client, ref=barrier.ref, result=True)

    def _reply(self, client: bytes, ref: int, result: Any) -> None:
        self.outbox.reply(client, API_REPLY, ref, True, result)

    def fail(self, client: bytes, ref: int, code: str, message: str) -> None:
        self.outbox.reply(client, API_REPLY, ref, False, {"code": code, "message": message})

    # ------------------------------------------------------------------ views

    def members(self, topic: str) -> dict[str, Any]:
        """The nodes a publish to ``topic`` reaches, with their subscriber counts."""
        check_topic(topic)
        return {
            "topic": topic,
            "owner": self.ring.owner(topic),
            "nodes": self.scope.reach(topic.encode()),
        }

    def status(self, now: float) -> dict[str, Any]:
        """What ``zdps status`` shows: identity, peers, ring, counters and errors."""
        peers = [
            {
                "node": p.node,
                "endpoint": p.endpoint,
                "state": str(p.state),
                "since_s": round(now - p.since, 3),
                "suspect": self.membership.detector.is_suspect(p.node),
                "fanout_sent": self.router.peer_fanout.get(p.node, 0),
            }
            for p in sorted(self.membership.peers.values(), key=lambda p: p.node)
        ]
        return {
            **self.info,
            "node": self.node,
            "scope": self.scope_name,
            "incarnation": self.incarnation,
            "detector": {
                "version": self.membership.detector.version,
                "health": self.membership.detector.health,
                **self.membership.detector.counts,
            },
            "uptime_s": round(now - self.started, 3),
            "peers": peers,
            "ring": {"nodes": sorted(self.ring.nodes), "digest": self.ring.digest()},
            "groups": {
                "local": len(self.scope.which_local_groups()),
                "cluster": len(self.scope.which_groups()),
            },
            "topics_sequenced": len(self.router.sequencer),
            "history": {"topics": len(self.history.topics), "messages": len(self.history)},
            "pending_acks": self.router.pending,
            "paused": self.paused,
            "counters": dict(self.counters),
            "errors": dict(self.errors),
        }

    # ------------------------------------------------------------------ glue

    def _membership(self, actions: list[mem.Action], now: float) -> None:
        ring_changed = False
        old_nodes = self.ring.nodes
        went_down: set[str] = set()
        for action in actions:
            if isinstance(action, mem.Send):
                send = self.outbox.probe if action.urgent else self.outbox.send
                send(action.endpoint, action.message)
            elif isinstance(action, mem.Disconnect):
                self.outbox.disconnect(action.endpoint)
            elif isinstance(action, mem.PeerUp):
                if self.ring.add(action.node):
                    ring_changed = True
                    self.counters["peers_joined"] += 1
                    self.outbox.log.append(f"peer {action.node} up at {action.endpoint}")
                self._scope(self.scope.peer_up(action.node))
            elif isinstance(action, mem.PeerDown):
                if self.ring.remove(action.node):
                    ring_changed = True
                    went_down.add(action.node)
                self.counters["peers_lost"] += 1
                self.outbox.log.append(f"peer {action.node} down ({action.reason})")
                self._scope(self.scope.peer_down(action.node))
                self.router.peer_down(action.node)
                for fetch_id, fetch in list(self._fetches.items()):
                    if fetch.owner == action.node:
                        del self._fetches[fetch_id]
                        self.fail(fetch.client, fetch.ref, E_OWNER_LOST, f"{fetch.owner} went away")
                self._resume(now)
                for barrier_id, barrier in list(self._barriers.items()):
                    if action.node in barrier.waiting:
                        barrier.waiting.discard(action.node)
                        self._ask_owners(barrier_id, barrier)
        if ring_changed:
            # A node that restarted (down and up again in this batch) is back without its
            # history: hand it over as to a node that joined.
            self.router.ring_changed(old_nodes - (went_down & self.ring.nodes), now)
            for key, topic in self._watches.items():
                self._push_watch(key, topic, None)

    def _scope(self, actions: list) -> None:
        for action in actions:
            if isinstance(action, ScopeSend):
                endpoint = self.membership.endpoint_of(action.peer)
                if endpoint is not None:
                    self.outbox.merge(endpoint, action.message)
            elif isinstance(action, MemberEvent):
                topic = self._watches.get(action.watcher)
                if topic is not None and _matches(action.group, topic):
                    self._push_watch(action.watcher, topic, action)

    def _push_watch(self, key: tuple[bytes, int], topic: str, event: MemberEvent | None) -> None:
        body: dict[str, Any] = self.members(topic)
        if event is not None:
            body["event"] = {
                "kind": event.kind,
                "group": group_topic(event.group),
                "prefix": not is_exact(event.group),
                "node": event.node,
                "count": event.count,
            }
        self.outbox.reply(key[0], API_EVENT, key[1], body)


def _position(value: object, name: str) -> tuple[int, int]:
    if not (type(value) is list and len(value) == 2 and all(type(x) is int for x in value)):
        raise ProtocolError(E_MALFORMED, f"{name} is [epoch, seq]")
    return value[0], value[1]


def _retention(count: object, age: object) -> Retention:
    if type(count) is not int or not 0 <= count <= MAX_HISTORY:
        raise ProtocolError(E_MALFORMED, f"history is 0 to {MAX_HISTORY} messages")
    if not isinstance(age, int | float) or not 0 < age <= MAX_HISTORY_TTL:
        raise ProtocolError(E_MALFORMED, f"ttl is over 0 and at most {MAX_HISTORY_TTL} s")
    return Retention(count, float(age))


def _matches(group: bytes, topic: str) -> bool:
    if is_exact(group):
        return group[:-1] == topic.encode()
    return topic.encode().startswith(group)


def _code(exc: BaseException) -> str:
    if isinstance(exc, ProtocolError):
        return exc.code
    if isinstance(exc, InvalidTopic):
        return E_INVALID_TOPIC
    return E_MALFORMED


def _text(exc: BaseException) -> str:
    return exc.message if isinstance(exc, ProtocolError) else str(exc) or type(exc).__name__
