"""Ack relaying: acknowledgements and refusals travel back along each publish's route.

Rules (docs/PROTOCOL.md §7.4):

* A *route* names who waits for a batch of publishes: ``(client identity, ref)`` for a
  client of this node (the batch's refs start at ``ref``), ``(node id, ack_id)`` for the
  peer that forwarded it to us.
* Each hop that forwards a batch with a route allocates one fresh ``ack_id`` for it and
  keeps ``(route, n, next hop, deadline)`` until the next hop answers. The answer is one
  entry ``[ack_id, seq, nodes, subscribers, n]`` per batch, relayed back as one; unknown
  ids (late answers) are ignored. Work per batch, none per message.
* A pending batch is refused with ``owner_lost`` if the next hop goes down first, and
  with ``timeout`` if no answer came within ``ack_timeout``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from zdps.core.ack_pacing import AckPacing
from zdps.core.outbox import Outbox
from zdps.core.part import Part
from zdps.wire.data import Ack, Nack, NackEntry
from zdps.wire.errors import E_OWNER_LOST, E_TIMEOUT

Route = tuple[bytes | str, int]


@dataclass(slots=True)
class Routes:
    """Writes an acknowledgement or a refusal to whoever waits on a route."""

    endpoint_of: Callable[[str], str | None]
    pacing: AckPacing = field(init=False)

    def __post_init__(self) -> None:
        self.pacing = AckPacing(self.endpoint_of)

    def ack(
        self,
        out: Outbox,
        route: Route,
        seq: int,
        nodes: int,
        subscribers: int,
        n: int = 1,
        lazy: bool = False,
    ) -> None:
        """The ``n`` publishes waiting on ``route`` got seqs ``seq``..``seq + n - 1``;
        ``lazy``: nobody waits on this one alone, it is paced (``ack_pacing.py``)."""
        target, ref = route
        if lazy:
            self.pacing.hold(target, ref, seq, nodes, subscribers, n)
            return
        self.pacing.send_held(target, out)
        if type(target) is bytes:
            out.client_ack(target, ref, seq, nodes, subscribers, n)
        else:
            endpoint = self.endpoint_of(target)  # type: ignore[arg-type]
            if endpoint is not None:
                out.ack(endpoint, ref, seq, nodes, subscribers, n)

    def refuse(self, out: Outbox, route: Route, code: str, message: str, n: int = 1) -> None:
        """The ``n`` publishes waiting on ``route`` are refused, after what is held for
        its destination (as with an acknowledgement that is not lazy)."""
        target, ref = route
        self.pacing.send_held(target, out)
        if type(target) is bytes:
            out.client_nack(target, ref, code, message, n)
        else:
            endpoint = self.endpoint_of(target)  # type: ignore[arg-type]
            if endpoint is not None:
                out.entry(endpoint, Nack, NackEntry(ref, code, message))


@dataclass(slots=True)
class AckRelay(Part):
    """Publishes this node forwarded, each waiting for the next hop's answer."""

    routes: Routes
    ack_timeout: float = 10.0
    _pending: dict[int, tuple[Route, int, str, float, bool]] = field(default_factory=dict)
    _next_ack: int = 1
    _messages: int = 0  # publishes in the pending batches

    def track(self, route: Route, n: int, next_hop: str, now: float, lazy: bool = False) -> int:
        """A fresh ack id for a batch of ``n`` forwarded to ``next_hop`` for ``route``
        (``lazy``: its acknowledgement is paced on its way back too).

        Ids are handed out in order and deadlines only grow, so ``_pending`` is ordered
        by deadline (``expire`` relies on it).
        """
        ack_id = self._next_ack
        self._next_ack += 1
        self._pending[ack_id] = (route, n, next_hop, now + self.ack_timeout, lazy)
        self._messages += n
        return ack_id

    def extend(self, ack_id: int, route: Route, n: int, lazy: bool) -> bool | None:
        """Add ``n`` publishes to the pending batch ``ack_id`` if ``route`` continues its
        own: the same client, its next refs. One ack then answers both as one run of
        refs, lazy only if both were (the client waits on the second if it is not).
        Whether the joined batch is lazy, or None if not joined. (A peer's ack ids do
        not count messages: never joined.)"""
        pending = self._pending.get(ack_id)
        if pending is None or type(route[0]) is not bytes:
            return None
        (target, ref), k, hop, deadline, was_lazy = pending
        if target != route[0] or ref + k != route[1]:
            return None
        lazy = was_lazy and lazy
        self._pending[ack_id] = ((target, ref), k + n, hop, deadline, lazy)
        self._messages += n
        return lazy

    def on_ack(self, sender: str, message: Ack, now: float, out: Outbox) -> None:
        """Acks from the next hop: relay each batch's back along its route."""
        pop, ack = self._pending.pop, self.routes.ack
        for ack_id, seq, nodes, subscribers, _n in message.entries:
            pending = pop(ack_id, None)
            if pending is not None:
                self._messages -= pending[1]
                ack(out, pending[0], seq, nodes, subscribers, pending[1], pending[4])

    def on_nack(self, sender: str, message: Nack, now: float, out: Outbox) -> None:
        for ack_id, code, why in message.entries:
            pending = self._pending.pop(ack_id, None)
            if pending is not None:
                self._messages -= pending[1]
                self.routes.refuse(out, pending[0], code, why, pending[1])

    def peer_down(self, node: str, out: Outbox) -> None:
        self.routes.pacing.forget(node)  # its batches' acks: it refuses them itself
        lost = [ack_id for ack_id, pending in self._pending.items() if pending[2] == node]
        why = f"node {node} went away before acknowledging"
        for ack_id in lost:
            self._refuse(ack_id, E_OWNER_LOST, why, out)

    def expire(self, now: float, out: Outbox) -> None:
        expired = []
        for ack_id, pending in self._pending.items():
            if pending[3] > now:
                break
            expired.append(ack_id)
        why = f"no acknowledgement within {self.ack_timeout} s"
        for ack_id in expired:
            self._refuse(ack_id, E_TIMEOUT, why, out)

    def _refuse(self, ack_id: int, code: str, why: str, out: Outbox) -> None:
        route, n, *_ = self._pending.pop(ack_id)
        self._messages -= n
        self.routes.refuse(out, route, code, why, n)

    def __len__(self) -> int:
        """Publishes waiting for the next hop's answer."""
        return self._messages
