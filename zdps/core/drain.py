"""Graceful drain (docs/PROTOCOL.md §4.5): a node leaves without taking history with it.

A node asked to drain (SIGTERM, or the ``drain`` request):

1. refuses its clients' publishes with ``draining`` (they go to another node), and
   answers everything else as before;
2. waits for the answers its clients' publishes still wait for;
3. sends the history of every topic it holds to every node of that topic's placement
   on the ring without it, then a ``barrier`` to each of them: the ``barrier_ok``
   comes back on the same ordered link, so the handoff before it was merged;
4. is drained once every such node confirmed (one that went down is not waited for),
   or at its deadline, whichever comes first. The IO layer then says ``bye``.

Until its ``bye`` its peers still route to it, so it goes on forwarding and sequencing
for them throughout; what it sequences after step 3 is on its replicas already (a
``replicated`` publish is acknowledged only then), which hand it on when the ring drops
this node.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from zdps.core.barrier import Barriers
from zdps.core.handoff import HistoryHandoff
from zdps.core.history import HistoryStore
from zdps.core.outbox import Outbox
from zdps.core.ring import HashRing


@dataclass(slots=True)
class Drain:
    """Where a drain is: not started, waiting for acks, waiting for confirmations, done."""

    node: str
    ring: HashRing
    copies: int  # nodes per placement: the owner and its replicas
    history: HistoryStore
    handoff: HistoryHandoff
    barriers: Barriers
    pending: Callable[[], int]  # client publishes still waiting for an answer
    started: float | None = None
    deadline: float = 0.0
    barrier_id: int | None = None  # the confirmations asked for, once the history went
    report: dict[str, Any] = field(default_factory=dict)
    requesters: list[tuple[bytes, int]] = field(default_factory=list)  # answered when done

    @property
    def active(self) -> bool:
        return self.started is not None

    def start(
        self, now: float, timeout: float, out: Outbox, requester: tuple[bytes, int] | None = None
    ) -> None:
        """Begin (again: a second request may only bring the deadline closer); a
        ``drain`` request is answered with the report once drained."""
        if requester is not None:
            self.requesters.append(requester)
        if self.started is None:
            self.started, self.deadline = now, now + timeout
            out.note("draining", timeout_s=timeout, pending_acks=self.pending())
        else:
            self.deadline = min(self.deadline, now + timeout)

    def done(self, now: float, out: Outbox) -> bool:
        """Advance; True once drained (or out of time): the node may leave."""
        assert self.started is not None
        if self.barrier_id is None and self.pending() and now < self.deadline:
            return False
        if self.barrier_id is None:
            self._hand_over(now, out)
        assert self.barrier_id is not None
        waiting = self.barriers.unsynced(self.barrier_id)
        if waiting and now < self.deadline:
            return False
        self.report.update(
            unconfirmed=sorted(waiting), pending_acks=self.pending(),
            took_s=round(now - self.started, 3),
        )  # fmt: skip
        out.note("drained", "warning" if waiting else "info", **self.report)
        for client, ref in self.requesters:
            out.reply(client, ref, self.report)
        return True

    def _hand_over(self, now: float, out: Outbox) -> None:
        others = self.ring.nodes - {self.node}
        rest = self.ring.with_nodes(others) if others else None
        targets: dict[str, int] = {}
        topics = entries = 0
        for topic in self.history.held() if rest is not None else ():
            topics += 1
            for node in rest.successors(topic, self.copies):
                entries += self.handoff.hand_over(node, topic, now, out)
                targets[node] = targets.get(node, 0) + 1
        self.barrier_id = self.barriers.sync(targets, out)
        self.report.update(topics=topics, messages=entries, to=len(targets))
