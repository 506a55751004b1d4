"""History requests: a client's node asks the topic's owner, which answers from its store.

A client may ask any node for a topic's history (docs/PROTOCOL.md §7.9); the owner holds
it, so the node forwards the request (``history``) and relays the answer
(``history_rep``). It fails with ``owner_lost`` if the owner goes down first,
``no_route`` without a link to it, and ``timeout`` after the request timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from zdps.core.history import HistoryStore
from zdps.core.outbox import Outbox
from zdps.core.part import Part
from zdps.core.ring import HashRing
from zdps.wire.api import HistoryQuery
from zdps.wire.errors import E_NO_ROUTE, E_OWNER_LOST, E_TIMEOUT
from zdps.wire.requests import History, HistoryRep


@dataclass(slots=True)
class _Fetch:
    """A client's history request forwarded to the topic's owner."""

    client: bytes
    ref: int
    owner: str
    deadline: float


@dataclass(slots=True)
class HistoryFetches(Part):
    """History requests this node forwarded, and the answers it gives as an owner."""

    node: str
    ring: HashRing
    endpoint_of: Callable[[str], str | None]
    history: HistoryStore
    counters: dict[str, int]
    timeout: float = 8.0
    _fetches: dict[int, _Fetch] = field(default_factory=dict)
    _next_fetch: int = 1

    def request(self, client: bytes, ref: int, query: HistoryQuery, now: float, out: Outbox):
        """A client's ``history`` request: answered here if we own the topic."""
        owner = self.ring.owner(query.topic)
        if owner == self.node:
            out.reply(client, ref, self.answer(query))
            return
        endpoint = self.endpoint_of(owner) if owner else None
        if endpoint is None:
            out.fail(client, ref, E_NO_ROUTE, f"no connection to the owner {owner}")
            return
        assert owner is not None
        fetch_id = self._next_fetch
        self._next_fetch += 1
        self._fetches[fetch_id] = _Fetch(client, ref, owner, now + self.timeout)
        out.send(endpoint, History(fetch_id, query))

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
        fetch = self._fetches.get(message.fetch_id)
        if fetch is not None and fetch.owner == sender:
            del self._fetches[message.fetch_id]
            out.reply(fetch.client, fetch.ref, message.result)

    def peer_down(self, node: str, out: Outbox) -> None:
        for fetch_id, fetch in list(self._fetches.items()):
            if fetch.owner == node:
                del self._fetches[fetch_id]
                out.fail(fetch.client, fetch.ref, E_OWNER_LOST, f"{fetch.owner} went away")

    def expire(self, now: float, out: Outbox) -> None:
        for fetch_id, fetch in list(self._fetches.items()):
            if fetch.deadline <= now:
                del self._fetches[fetch_id]
                out.fail(fetch.client, fetch.ref, E_TIMEOUT, f"owner {fetch.owner} did not answer")
