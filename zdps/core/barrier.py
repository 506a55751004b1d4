"""The subscribe barrier: ``ready`` answers once a subscription is known to its owners (§9.4).

A client subscribes its SUB to the groups, then to a sync token, then sends ``ready``
with the same token. The node sees the groups before the token (one SUB, one ordered
connection), so when both the token and the request have arrived (in either order) it
has already queued the groups' ``update`` to every peer. It then sends ``barrier`` to
each owner concerned (the ring owner of every exact group; every peer for a prefix)
and answers once each has answered ``barrier_ok``: the owner applied our update first,
on the same ordered link, so a publish it sequences after that reaches the new
subscriber. An owner that goes down is not waited for; the owners of the new ring are
asked instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from zdps.core.outbox import Outbox
from zdps.core.part import Part
from zdps.core.ring import HashRing
from zdps.topics import group_topic, is_exact
from zdps.wire.api import Ready
from zdps.wire.errors import E_TIMEOUT
from zdps.wire.requests import Barrier, BarrierOk


@dataclass(slots=True)
class _Waiting:
    """A ``ready`` request whose token has not shown up yet."""

    client: bytes
    ref: int
    groups: list[bytes]
    deadline: float


@dataclass(slots=True)
class _Barrier:
    client: bytes
    ref: int
    groups: list[bytes]
    deadline: float
    waiting: set[str] = field(default_factory=set)  # owners asked, not yet answered
    confirmed: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Barriers(Part):
    """``ready`` requests, the sync tokens seen, and the barriers sent to owners."""

    node: str
    ring: HashRing
    alive: Callable[[], list[str]]
    endpoint_of: Callable[[str], str | None]
    timeout: float = 8.0  # below the clients' 10 s default, so the node answers first
    _ready: dict[str, _Waiting] = field(default_factory=dict)  # by token
    _tokens_seen: dict[str, float] = field(default_factory=dict)
    _barriers: dict[int, _Barrier] = field(default_factory=dict)
    _syncs: dict[int, set[str]] = field(default_factory=dict)  # nodes yet to answer
    _next_barrier: int = 1

    def on_ready(self, client: bytes, ref: int, op: Ready, now: float, out: Outbox) -> None:
        self._ready[op.token] = _Waiting(client, ref, op.groups, now + self.timeout)
        if op.token in self._tokens_seen:
            self.token_seen(op.token, now, out)

    def sync(self, nodes: Iterable[str], out: Outbox) -> int:
        """Send a barrier to each of ``nodes``: once a node answers, it has processed
        everything this node sent it before (``unsynced`` tells who has not yet)."""
        barrier_id = self._next_barrier
        self._next_barrier += 1
        waiting = self._syncs[barrier_id] = set()
        for node in nodes:
            endpoint = self.endpoint_of(node)
            if endpoint is not None:
                waiting.add(node)
                out.send(endpoint, Barrier(barrier_id))
        return barrier_id

    def unsynced(self, barrier_id: int) -> set[str]:
        return self._syncs.get(barrier_id, set())

    def token_seen(self, token: str, now: float, out: Outbox) -> None:
        """The XPUB reported the subscription to ``token`` (after the groups before it)."""
        self._tokens_seen[token] = now
        waiting = self._ready.pop(token, None)
        if waiting is None:
            return
        barrier_id = self._next_barrier
        self._next_barrier += 1
        barrier = _Barrier(waiting.client, waiting.ref, waiting.groups, waiting.deadline)
        self._barriers[barrier_id] = barrier
        self._ask_owners(barrier_id, barrier, out)

    def on_barrier(self, sender: str, message: Barrier, now: float, out: Outbox) -> None:
        """As an owner: everything ``sender`` sent before this is applied, so answer."""
        endpoint = self.endpoint_of(sender)
        if endpoint is not None:
            out.send(endpoint, BarrierOk(message.barrier_id))

    def on_barrier_ok(self, sender: str, message: BarrierOk, now: float, out: Outbox) -> None:
        self._syncs.get(message.barrier_id, set()).discard(sender)
        barrier = self._barriers.get(message.barrier_id)
        if barrier is not None and sender in barrier.waiting:
            barrier.waiting.discard(sender)
            barrier.confirmed.add(sender)
            self._finish(message.barrier_id, barrier, out)

    def _ask_owners(self, barrier_id: int, barrier: _Barrier, out: Outbox) -> None:
        """Send the barrier to every owner of its groups not yet asked; finish if none left.

        Called again when an owner dies: its topics' new owners are asked in turn (our
        ``update`` reached them before the barrier does, on the same ordered link).
        """
        owners: set[str] = set()
        for group in barrier.groups:
            if is_exact(group):
                owners.add(self.ring.owner(group_topic(group)) or self.node)
            else:
                owners.update(self.alive())
        for owner in owners - barrier.confirmed - barrier.waiting - {self.node}:
            endpoint = self.endpoint_of(owner)
            if endpoint is not None:
                barrier.waiting.add(owner)
                out.send(endpoint, Barrier(barrier_id))
        self._finish(barrier_id, barrier, out)

    def _finish(self, barrier_id: int, barrier: _Barrier, out: Outbox) -> None:
        if not barrier.waiting:
            del self._barriers[barrier_id]
            out.reply(barrier.client, barrier.ref, True)

    def peer_down(self, node: str, out: Outbox) -> None:
        for waiting in self._syncs.values():
            waiting.discard(node)
        for barrier_id, barrier in list(self._barriers.items()):
            if node in barrier.waiting:
                barrier.waiting.discard(node)
                self._ask_owners(barrier_id, barrier, out)

    def expire(self, now: float, out: Outbox) -> None:
        for barrier_id, barrier in list(self._barriers.items()):
            if barrier.deadline <= now:
                del self._barriers[barrier_id]
                out.fail(barrier.client, barrier.ref, E_TIMEOUT, "owners did not confirm")
        for token, waiting in list(self._ready.items()):
            if waiting.deadline <= now:
                del self._ready[token]
                why = "the subscription never reached the node"
                out.fail(waiting.client, waiting.ref, E_TIMEOUT, why)
        for token, seen in list(self._tokens_seen.items()):
            if seen + self.timeout <= now:
                del self._tokens_seen[token]
