"""Who a publish to a topic reaches, as its owner sees it (docs/PROTOCOL.md §7.3, §7.8).

Interested nodes (an exact or prefix member in the scope overlay) get one ``fanout``
copy each; the topic's replicas get a ``store`` copy instead, delivered there too when
the replica has interest, so no node gets two copies. Each queue group of the topic
gets one more copy, for one of its members (queues.py). Computed from the overlay, the
ring and the topic's retention, and cached per topic until one of them changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from zdps.core.history import HistoryStore
from zdps.core.overlay import Overlay
from zdps.core.queues import QueueTarget, queue_target, queues_of
from zdps.core.replication import Replication
from zdps.core.ring import HashRing
from zdps.wire.limits import U64

MAX_CACHED = 100_000  # topics whose interest is cached; beyond that the cache starts over


@dataclass(slots=True)
class Interest:
    """The copies one publish to a topic makes."""

    endpoints: list[str]  # fanout copies go here ...
    nodes: list[str]  # ... to these nodes, in the same order
    local: bool  # delivered on this node's own PUB
    subscribers: int  # the reach counts summed, and one per queue group (what acks report)
    replicas: list[tuple[str, str, bool]]  # (node, endpoint, deliver there too): store copies
    reached: int  # nodes that deliver it
    keeps_history: bool  # the topic's retention when this was computed was not 0
    queues: list[QueueTarget]  # the queue groups with members for the topic


@dataclass(slots=True)
class InterestCache:
    """``Interest`` per topic, valid while the overlay's version and the ring are unchanged."""

    node: str
    ring: HashRing
    overlay: Overlay
    endpoint_of: Callable[[str], str | None]
    history: HistoryStore
    replication: Replication
    _cache: dict[str, Interest] = field(default_factory=dict)
    _version: int = -1

    def of(self, topic: str) -> Interest:
        if self._version != self.overlay.version:
            self._cache.clear()
            self._version = self.overlay.version
        found = self._cache.get(topic)
        # A retention can change by configure, by handoff or by deletion: checked here.
        if found is None or found.keeps_history != (self.history.retention(topic).count > 0):
            found = self._compute(topic)
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[topic] = found
        return found

    def clear(self) -> None:
        """The ring or the live peers changed."""
        self._cache.clear()

    def _compute(self, topic: str) -> Interest:
        raw = topic.encode()
        reach = self.overlay.reach(raw)
        replicas = []
        keeps_history = self.history.retention(topic).count > 0
        if self.ring.owner(topic) == self.node and keeps_history:
            for node in self.replication.replicas(topic):
                endpoint = self.endpoint_of(node)
                if endpoint is not None:
                    replicas.append((node, endpoint, node in reach))
        copied = {node for node, _, _ in replicas}
        nodes, endpoints = [], []
        for node in reach:
            endpoint = self.endpoint_of(node) if node != self.node else None
            if endpoint is not None and node not in copied:
                nodes.append(node)
                endpoints.append(endpoint)
        local = self.node in reach
        reached = len(nodes) + local + sum(deliver for _, _, deliver in replicas)
        queues = self._queues(raw)
        # Counts are each node's word: a sum past what an ack carries is reported as the most.
        subscribers = min(sum(reach.values()) + len(queues), U64 - 1)
        return Interest(
            endpoints, nodes, local, subscribers, replicas, reached, keeps_history, queues
        )

    def _queues(self, topic: bytes) -> list[QueueTarget]:
        overlay = self.overlay
        return [queue_target(key, overlay.members(key)) for _, key in queues_of(overlay, topic)]
