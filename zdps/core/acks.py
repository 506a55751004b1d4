"""Ack relaying: acknowledgements and refusals travel back along each publish's route.

Rules (docs/PROTOCOL.md §7.4):

* A *route* names who waits for a publish: ``(client identity, ref)`` for a client of
  this node, ``(node id, ack_id)`` for the peer that forwarded it to us.
* Each hop that forwards a publish with a route allocates a fresh ``ack_id`` and keeps
  ``(route, next hop, deadline)`` until the next hop answers. Acks come back as runs
  ``[ack_id, seq, nodes, subscribers, n]`` and are relayed one by one, where runs form
  again; unknown ids (late answers) are ignored.
* A pending publish is refused with ``owner_lost`` if the next hop goes down first, and
  with ``timeout`` if no answer came within ``ack_timeout``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from zdps.core.outbox import Outbox
from zdps.core.part import Part
from zdps.wire.data import Ack, Nack, NackEntry
from zdps.wire.errors import E_OWNER_LOST, E_TIMEOUT

Route = tuple[bytes | str, int]


@dataclass(slots=True)
class Routes:
    """Writes an acknowledgement or a refusal to whoever waits on a route."""

    endpoint_of: Callable[[str], str | None]

    def ack(self, out: Outbox, route: Route, seq: int, nodes: int, subscribers: int) -> None:
        target, ref = route
        if type(target) is bytes:
            out.client_ack(target, ref, seq, nodes, subscribers)
        else:
            endpoint = self.endpoint_of(target)  # type: ignore[arg-type]
            if endpoint is not None:
                out.ack(endpoint, ref, seq, nodes, subscribers)

    def refuse(self, out: Outbox, route: Route, code: str, message: str) -> None:
        target, ref = route
        if type(target) is bytes:
            out.client_nack(target, ref, code, message)
        else:
            endpoint = self.endpoint_of(target)  # type: ignore[arg-type]
            if endpoint is not None:
                out.batch(endpoint, Nack, NackEntry(ref, code, message))


@dataclass(slots=True)
class AckRelay(Part):
    """Publishes this node forwarded, each waiting for the next hop's answer."""

    routes: Routes
    ack_timeout: float = 10.0
    _pending: dict[int, tuple[Route, str, float]] = field(default_factory=dict)
    _next_ack: int = 1

    def track(self, route: Route, next_hop: str, now: float) -> int:
        """A fresh ack id for a publish forwarded to ``next_hop`` on behalf of ``route``.

        Ids are handed out in order and deadlines only grow, so ``_pending`` is ordered
        by deadline (``expire`` relies on it).
        """
        ack_id = self._next_ack
        self._next_ack += 1
        self._pending[ack_id] = (route, next_hop, now + self.ack_timeout)
        return ack_id

    def on_ack(self, sender: str, message: Ack, now: float, out: Outbox) -> None:
        """Acks from the next hop: relay each one back along its route."""
        pop, ack = self._pending.pop, self.routes.ack
        for ack_id, seq, nodes, subscribers, n in message.entries:
            for i in range(n):
                pending = pop(ack_id + i, None)
                if pending is not None:
                    ack(out, pending[0], seq + i, nodes, subscribers)

    def on_nack(self, sender: str, message: Nack, now: float, out: Outbox) -> None:
        for ack_id, code, why in message.entries:
            pending = self._pending.pop(ack_id, None)
            if pending is not None:
                self.routes.refuse(out, pending[0], code, why)

    def peer_down(self, node: str, out: Outbox) -> None:
        lost = [ack_id for ack_id, pending in self._pending.items() if pending[1] == node]
        for ack_id in lost:
            route = self._pending.pop(ack_id)[0]
            self.routes.refuse(
                out, route, E_OWNER_LOST, f"node {node} went away before acknowledging"
            )

    def expire(self, now: float, out: Outbox) -> None:
        expired = []
        for ack_id, pending in self._pending.items():
            if pending[2] > now:
                break
            expired.append(ack_id)
        for ack_id in expired:
            route = self._pending.pop(ack_id)[0]
            message = f"no acknowledgement within {self.ack_timeout} s"
            self.routes.refuse(out, route, E_TIMEOUT, message)

    def __len__(self) -> int:
        return len(self._pending)
