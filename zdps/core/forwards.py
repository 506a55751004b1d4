"""Client requests a node forwarded to the owner that answers them, until they are answered.

History requests (``history``) and durable consumers' ops (``owner_req``) are answered
by a topic's owner; the client's node forwards them under an id of its own and relays
the answer. One forwarded request fails with ``no_route`` when there is no link to the
owner, ``owner_lost`` if the owner goes down first, and ``timeout`` after the timeout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zdps.core.outbox import Outbox
from zdps.wire.errors import E_NO_ROUTE, E_OWNER_LOST, E_TIMEOUT


@dataclass(slots=True)
class _Forwarded:
    client: bytes
    ref: int
    owner: str
    deadline: float


@dataclass(slots=True)
class Forwards:
    """The requests forwarded and not answered yet, by id."""

    timeout: float = 8.0
    _waiting: dict[int, _Forwarded] = field(default_factory=dict)
    _next: int = 1

    def forward(
        self,
        client: bytes,
        ref: int,
        owner: str | None,
        endpoint: str | None,
        now: float,
        out: Outbox,
    ) -> int | None:
        """The id to send the request to ``owner`` under, or None (and the client told
        why) if there is no link to it."""
        if owner is None or endpoint is None:
            out.fail(client, ref, E_NO_ROUTE, f"no connection to the owner {owner}")
            return None
        forward_id, self._next = self._next, self._next + 1
        self._waiting[forward_id] = _Forwarded(client, ref, owner, now + self.timeout)
        return forward_id

    def answered(self, sender: str, forward_id: int) -> tuple[bytes, int] | None:
        """``(client, ref)`` the answer of ``sender`` goes to; None if it answers
        nothing forwarded to it (late, or not ours)."""
        forwarded = self._waiting.get(forward_id)
        if forwarded is None or forwarded.owner != sender:
            return None
        del self._waiting[forward_id]
        return forwarded.client, forwarded.ref

    def peer_down(self, node: str, out: Outbox) -> None:
        for forward_id, forwarded in list(self._waiting.items()):
            if forwarded.owner == node:
                del self._waiting[forward_id]
                out.fail(forwarded.client, forwarded.ref, E_OWNER_LOST, f"{node} went away")

    def expire(self, now: float, out: Outbox) -> None:
        for forward_id, forwarded in list(self._waiting.items()):
            if forwarded.deadline <= now:
                del self._waiting[forward_id]
                why = f"owner {forwarded.owner} did not answer"
                out.fail(forwarded.client, forwarded.ref, E_TIMEOUT, why)
