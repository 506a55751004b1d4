"""Client frames: publishes go to the router, each request op to the part that answers it.

Every frame is decoded in ``zdps.wire.api``; what fails there is counted and answered
(§8.4): a bad publish entry is nacked under its ref (unless it is 0), a bad request
gets ``rep false`` under its ref (0 if it has none), and a frame that cannot be read
at all gets ``rep`` with ref 0.

While the node is saturated (flow.py) a client's publishes are *held* here, in
arrival order, and so is everything that client sends after them, so that its own
frames keep their order; other clients' requests (``zdps status`` above all) are
answered at once. Held frames go on, oldest first, once the node is no longer
saturated. Only when they reach ``HOLD_BYTES`` does the IO layer stop reading client
frames (``held_full``), which leaves the rest queued in ZeroMQ: memory stays bounded,
and publishers wait (docs/PROTOCOL.md §7.7).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from zdps.core.barrier import Barriers
from zdps.core.consumers import Consumers
from zdps.core.flow import FlowControl
from zdps.core.history_fetch import HistoryFetches
from zdps.core.losses import SubscriberLosses
from zdps.core.outbox import Outbox
from zdps.core.permissions import Permissions
from zdps.core.publish_rate import PublishRate
from zdps.core.queues import QueueGroups
from zdps.core.routing import Router
from zdps.core.watches import Watches
from zdps.wire.api import (
    API_PUBLISH,
    API_REQUEST,
    Create,
    Delete,
    Drain,
    HistoryQuery,
    Info,
    Lost,
    Members,
    Op,
    QueueJoin,
    QueueLeave,
    Ready,
    Status,
    Unwatch,
    Watch,
    decode_request,
    request_ref,
)
from zdps.wire.codec import decode_api
from zdps.wire.consumers import API_CONSUMER_ACK, OWNER_OPS, Consume, decode_verdicts
from zdps.wire.errors import (
    E_DRAINING,
    E_FORBIDDEN,
    E_RATE_LIMITED,
    E_UNKNOWN_OP,
    ProtocolError,
    malformed,
)
from zdps.wire.publish_entries import PublishDecoder

OpHandler = Callable[[bytes, int, Any, float, Outbox], None]
HOLD_BYTES = 32 * 1024 * 1024  # client frames held while saturated, at most (plus one)
# How a publish frame [2, "pub", entries] starts (msgpack: array of 3, 2, "pub"); one of
# another version or spelling is not held but answered at once (bad_version, malformed).
PUBLISH_START = b"\x93\x02\xa3pub"


@dataclass(slots=True)
class ClientApi:
    """The node's side of the client API."""

    router: Router
    watches: Watches
    barriers: Barriers
    fetches: HistoryFetches
    status: Callable[[float], dict[str, Any]]
    info: dict[str, Any]
    counters: dict[str, int]
    bad_input: Callable[[str, str], None]
    publishes: PublishDecoder
    flow: FlowControl
    losses: SubscriberLosses  # subscribers' own reports go here too
    permissions: Permissions | None = None  # per-client topic rules (permissions.py)
    rate: PublishRate | None = None  # max_publish_rate per client (publish_rate.py)
    drain: OpHandler | None = None  # the ``drain`` request (drain.py)
    queues: QueueGroups | None = None  # queue_join and queue_leave (queues.py)
    consumers: Consumers | None = None  # consumer ops, consume, cack (consumers.py)
    draining: bool = False  # publishes are refused: the node is leaving
    # (client, frame, user): frames held while saturated, oldest first, undecoded
    held: deque[tuple[bytes, bytes, str | None]] = field(default_factory=deque)
    held_bytes: int = 0
    _holding: dict[bytes, int] = field(default_factory=dict)  # client -> frames held
    _ops: dict[type[Op], OpHandler] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._ops = {
            Info: lambda client, ref, _op, _now, out: out.reply(client, ref, self.info),
            Status: lambda client, ref, _op, now, out: out.reply(client, ref, self.status(now)),
            Members: lambda client, ref, op, _now, out: out.reply(
                client, ref, self.watches.members(op.topic)
            ),
            Watch: lambda client, ref, op, _now, out: self.watches.watch(
                client, ref, op.topic, out
            ),
            Unwatch: lambda client, ref, op, _now, out: self.watches.unwatch(
                client, ref, op.ref, out
            ),
            Ready: self.barriers.on_ready,
            Delete: lambda client, ref, op, now, out: self.router.close(
                op.topic, (client, ref), 0, now, out
            ),
            Create: lambda client, ref, op, now, out: self.router.configure(
                op.topic, op.retention, (client, ref), 0, now, out
            ),
            HistoryQuery: self.fetches.request,
            Lost: self._lost,
        }
        if self.drain is not None:
            self._ops[Drain] = self.drain
        if self.queues is not None:
            self._ops[QueueJoin] = self.queues.join
            self._ops[QueueLeave] = self.queues.leave
        if self.consumers is not None:
            for op in OWNER_OPS:
                self._ops[op] = self.consumers.request  # type: ignore[assignment]
            self._ops[Consume] = self.consumers.here.consume

    def _lost(self, client: bytes, ref: int, op: Lost, _now: float, out: Outbox) -> None:
        self.losses.reported(op.subscriber, op.missed, op.recovered)
        out.reply(client, ref, True)

    def on_frame(
        self, client: bytes, frame: bytes, now: float, out: Outbox, user: str | None = None
    ) -> None:
        """One API frame from the client whose connection is identified by ``client``,
        and whose CURVE key is named ``user`` (None: no CURVE, or no permissions).

        A frame is held as it came, undecoded: decoded, a frame of tiny entries takes
        tens of times its size, and HOLD_BYTES bounds what is held."""
        if client in self._holding or (self.flow.saturated and frame[:6] == PUBLISH_START):
            self.held.append((client, frame, user))
            self.held_bytes += len(frame)
            self._holding[client] = self._holding.get(client, 0) + 1
            self.counters["held"] += 1
            return
        self._decoded(client, frame, now, out, user)

    def _decoded(
        self, client: bytes, frame: bytes, now: float, out: Outbox, user: str | None
    ) -> None:
        try:
            self._handle(client, decode_api(frame), now, out, user)
        except ProtocolError as exc:
            self._failed(client, exc, out)

    @property
    def held_full(self) -> bool:
        """Held frames reached HOLD_BYTES: the IO layer must stop reading client frames."""
        return self.held_bytes >= HOLD_BYTES

    def release(self, now: float, out: Outbox) -> None:
        """Handle held frames, oldest first, while the node is not saturated."""
        held, holding = self.held, self._holding
        while held and not self.flow.saturated:
            client, frame, user = held.popleft()
            self.held_bytes -= len(frame)
            if holding[client] == 1:
                del holding[client]
            else:
                holding[client] -= 1
            self._decoded(client, frame, now, out, user)

    def _handle(
        self, client: bytes, fields: list, now: float, out: Outbox, user: str | None
    ) -> None:
        kind = fields[0]
        if kind == API_PUBLISH:
            if len(fields) != 2:
                raise malformed("a publish is [1, 'pub', [entries]]")
            self.on_publish(client, fields[1], now, out, user)
        elif kind == API_REQUEST:
            self.on_request(client, fields[1:], now, out, user)
        elif kind == API_CONSUMER_ACK and self.consumers is not None:
            if len(fields) != 2:
                raise malformed("a cack is [2, 'cack', [entries]]")
            verdicts = decode_verdicts(fields[1])
            if self.permissions is not None:  # a verdict is a consumer's: subscribing
                allowed = self.permissions.may_subscribe
                refused = [v for v in verdicts if not allowed(user, v.topic.encode() + b"\x00")]
                for verdict in refused:
                    why = f"{user or 'this client'} may not consume {verdict.topic!r}"
                    self.bad_input(E_FORBIDDEN, f"cack from client {client.hex()}: {why}")
                verdicts = [v for v in verdicts if v not in refused]
            self.consumers.here.verdicts(verdicts, now, out)
        elif _is_envelope(fields):
            raise ProtocolError(
                E_UNKNOWN_OP,
                f"a cluster envelope from node {str(fields[1])[:64]!r}: this is an API "
                "endpoint, which that node has as a seed or peer (give it a cluster one)",
            )
        else:
            raise ProtocolError(E_UNKNOWN_OP, f"unknown API message {kind[:32]!r}")

    def _failed(self, client: bytes, exc: ProtocolError, out: Outbox) -> None:
        self.bad_input(exc.code, f"API frame from client {client.hex()}: {exc.message}")
        out.fail(client, 0, exc.code, exc.message)

    def on_publish(
        self, client: bytes, body: Any, now: float, out: Outbox, user: str | None = None
    ) -> None:
        """Batches ``[[ref, topic, n, batch, level?, lazy?], ...]``; ref 0 wants no ack."""
        entries, rejects = self.publishes.decode(body)
        for reject in rejects:
            self._nack(client, reject.ref, reject.n, reject.code, reject.message, out)
        if self.draining:
            why = "the node is draining: publish through another node"
            for ref, _topic, n, *_ in entries:
                self._nack(client, ref, n, E_DRAINING, why, out)
            return
        publish = self.router.publish
        permissions = self.permissions
        count = 0
        rate = self.rate
        for ref, topic, n, batch, level, lazy in entries:
            if permissions is not None and not permissions.may_publish(user, topic):
                why = f"{user or 'this client'} may not publish to {topic!r}"
                self._nack(client, ref, n, E_FORBIDDEN, why, out)
                continue
            if rate is not None and not rate.take(client, n, now):
                why = f"over max_publish_rate ({rate.rate} messages a second)"
                self._nack(client, ref, n, E_RATE_LIMITED, why, out)
                continue
            route = (client, ref) if ref else None
            publish(topic, n, batch, route, 0, now, out, level, lazy)
            count += n
        self.counters["published"] += count

    def on_request(
        self, client: bytes, fields: list, now: float, out: Outbox, user: str | None = None
    ) -> None:
        """A request ``[ref, op, args]``; the answer is a reply (or events) to ``client``."""
        try:
            request = decode_request(fields)
        except ProtocolError as exc:
            self.bad_input(exc.code, f"request from client {client.hex()}: {exc.message}")
            out.fail(client, request_ref(fields), exc.code, exc.message)
            return
        op = request.op
        refused = None if self.permissions is None else self._refused(user, op)
        if refused is not None:
            self._forbidden(client, user, refused, out, request.ref)
            return
        self._ops[type(op)](client, request.ref, op, now, out)

    def _refused(self, user: str | None, op: Op) -> str | None:
        """What ``user`` may not do of ``op``, if anything. Deleting or creating a topic
        needs the right to publish to it; reading its history or members, and a
        subscription's ``ready``, the right to subscribe."""
        permissions = self.permissions
        assert permissions is not None
        if isinstance(op, Delete | Create) and not permissions.may_publish(user, op.topic):
            return f"{type(op).__name__.lower()} {op.topic!r}"
        reads = isinstance(op, HistoryQuery | Members | Watch)
        if reads and not permissions.may_subscribe(user, op.topic.encode() + b"\x00"):
            return f"read {op.topic!r}"
        if isinstance(op, Drain) and not permissions.may_drain(user):
            return "drain the node"
        if isinstance(op, QueueJoin) and not permissions.may_subscribe(user, op.subscription):
            return f"subscribe to {op.subscription[:64]!r}"
        consumes = isinstance(op, (*OWNER_OPS, Consume))
        if consumes and not permissions.may_subscribe(user, op.topic.encode() + b"\x00"):
            return f"consume {op.topic!r}"
        if isinstance(op, Ready):
            for group in op.groups:
                if not permissions.may_subscribe(user, group):
                    return f"subscribe to {group[:64]!r}"
        return None

    def _nack(self, client: bytes, ref: int, n: int, code: str, message: str, out: Outbox) -> None:
        """A publish entry refused: counted, logged, and nacked under its ``n`` refs
        (ref 0 wants no answer)."""
        self.bad_input(code, f"publish from client {client.hex()}: {message}")
        if ref:
            out.client_nack(client, ref, code, message, n)

    def _forbidden(self, client: bytes, user: str | None, what: str, out: Outbox, ref: int) -> None:
        """A request the client's permissions refuse: ``rep false forbidden``."""
        message = f"{user or 'this client'} may not {what}"
        self.bad_input(E_FORBIDDEN, f"request from client {client.hex()}: {message}")
        out.fail(client, ref, E_FORBIDDEN, message)


def _is_envelope(fields: list) -> bool:
    """[scope, sender, incarnation, messages]: a node dialled this endpoint as a peer."""
    return (
        len(fields) == 4
        and type(fields[1]) is str
        and type(fields[2]) is int
        and type(fields[3]) is list
    )
