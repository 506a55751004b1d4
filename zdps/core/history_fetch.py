"""History requests: a client's node asks the topic's owner, which answers from its store.

A client may ask any node for a topic's history (docs/PROTOCOL.md §7.9); the owner holds
it, so the node forwards the request (``history``) and relays the answer
(``history_rep``), failing it as every forwarded request fails (forwards.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from zdps.core.forwards import Forwards
from zdps.core.history import HistoryStore
from zdps.core.outbox import Outbox
from zdps.core.part import Part
from zdps.core.ring import HashRing
from zdps.wire.api import HistoryQuery
from zdps.wire.requests import History, HistoryRep


@dataclass(slots=True)
class HistoryFetches(Part):
    """History requests this node forwarded, and the answers it gives as an owner."""

    node: str
    ring: HashRing
    endpoint_of: Callable[[str], str | None]
    history: HistoryStore
    counters: dict[str, int]
    timeout: float = 8.0
    _forwards: Forwards = field(init=False)

    def __post_init__(self) -> None:
        self._forwards = Forwards(self.timeout)

    def request(self, client: bytes, ref: int, query: HistoryQuery, now: float, out: Outbox):
        """A client's ``history`` request: answered here if we own the topic."""
        owner = self.ring.owner(query.topic)
        if owner == self.node:
            out.reply(client, ref, self.answer(query))
            return
        endpoint = self.endpoint_of(owner) if owner else None
        fetch_id = self._forwards.forward(client, ref, owner, endpoint, now, out)
        if fetch_id is not None:
            out.send(endpoint, History(fetch_id, query))  # type: ignore[arg-type]

    def answer(self, query: HistoryQuery) -> dict[str, Any]:
        """One page of what this node stores of the topic."""
        entries, more = self.history.page(query)
        self.counters["history_served"] += len(entries)
        return {"topic": query.topic, "node": self.node, "entries": entries, "more": more}

    def on_history(self, sender: str, message: History, now: float, out: Outbox) -> None:
        endpoint = self.endpoint_of(sender)
        if endpoint is not None:
            out.send(endpoint, HistoryRep(message.fetch_id, self.answer(message.query)))

    def on_history_rep(self, sender: str, message: HistoryRep, now: float, out: Outbox) -> None:
        to = self._forwards.answered(sender, message.fetch_id)
        if to is not None:
            out.reply(*to, message.result)

    def peer_down(self, node: str, out: Outbox) -> None:
        self._forwards.peer_down(node, out)

    def expire(self, now: float, out: Outbox) -> None:
        self._forwards.expire(now, out)
