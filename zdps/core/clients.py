"""Client frames: publishes go to the router, each request op to the part that answers it.

Every frame is decoded in ``zdps.wire.api``; what fails there is counted and answered
(§8.4): a bad publish entry is nacked under its ref (unless it is 0), a bad request
gets ``rep false`` under its ref (0 if it has none), and a frame that cannot be read
at all gets ``rep`` with ref 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from zdps.core.barrier import Barriers
from zdps.core.history_fetch import HistoryFetches
from zdps.core.outbox import Outbox
from zdps.core.routing import Router
from zdps.core.watches import Watches
from zdps.wire.api import (
    API_PUBLISH,
    API_REQUEST,
    Create,
    Delete,
    HistoryQuery,
    Info,
    Members,
    Op,
    PublishDecoder,
    Ready,
    Status,
    Unwatch,
    Watch,
    decode_request,
    request_ref,
)
from zdps.wire.codec import decode_api
from zdps.wire.errors import E_UNKNOWN_OP, ProtocolError, malformed

OpHandler = Callable[[bytes, int, Any, float, Outbox], None]


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
        }

    def on_frame(self, client: bytes, frame: bytes, now: float, out: Outbox) -> None:
        """One API frame from the client whose connection is identified by ``client``."""
        try:
            fields = decode_api(frame)
            kind = fields[0]
            if kind == API_PUBLISH:
                if len(fields) != 2:
                    raise malformed("a publish is [1, 'pub', [entries]]")
                self.on_publish(client, fields[1], now, out)
            elif kind == API_REQUEST:
                self.on_request(client, fields[1:], now, out)
            elif _is_envelope(fields):
                raise ProtocolError(
                    E_UNKNOWN_OP,
                    f"a cluster envelope from node {str(fields[1])[:64]!r}: this is an API "
                    "endpoint, which that node has as a seed or peer (give it a cluster one)",
                )
            else:
                raise ProtocolError(E_UNKNOWN_OP, f"unknown API message {kind[:32]!r}")
        except ProtocolError as exc:
            self.bad_input(exc.code, f"API frame from client {client.hex()}: {exc.message}")
            out.fail(client, 0, exc.code, exc.message)

    def on_publish(self, client: bytes, body: Any, now: float, out: Outbox) -> None:
        """Batches ``[[ref, topic, n, batch, level?, lazy?], ...]``; ref 0 wants no ack."""
        entries, rejects = self.publishes.decode(body)
        for reject in rejects:
            self.bad_input(reject.code, f"publish from client {client.hex()}: {reject.message}")
            if reject.ref:
                out.client_nack(client, reject.ref, reject.code, reject.message, reject.n)
        publish = self.router.publish
        count = 0
        for ref, topic, n, batch, level, lazy in entries:
            route = (client, ref) if ref else None
            publish(topic, n, batch, route, 0, now, out, level, lazy)
            count += n
        self.counters["published"] += count

    def on_request(self, client: bytes, fields: list, now: float, out: Outbox) -> None:
        """A request ``[ref, op, args]``; the answer is a reply (or events) to ``client``."""
        try:
            request = decode_request(fields)
        except ProtocolError as exc:
            self.bad_input(exc.code, f"request from client {client.hex()}: {exc.message}")
            out.fail(client, request_ref(fields), exc.code, exc.message)
            return
        self._ops[type(request.op)](client, request.ref, request.op, now, out)


def _is_envelope(fields: list) -> bool:
    """[scope, sender, incarnation, messages]: a node dialled this endpoint as a peer."""
    return (
        len(fields) == 4
        and type(fields[1]) is str
        and type(fields[2]) is int
        and type(fields[3]) is list
    )
