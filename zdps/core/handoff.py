"""Handoff: the history this node holds follows the ring (docs/PROTOCOL.md §7.8).

* After every ring change each holder of a topic's history sends it to the nodes newly
  in the topic's placement (``Replication.handoffs``), in ``handoff`` messages of at
  most HANDOFF_BYTES of payload, and forgets its copy if it is no longer in it.
* A receiver merges by ``(epoch, seq)``. If it got entries it did not have (the other
  side of a healed netsplit), it passes the topic on to the rest of the placement as
  it sees it, not back to the sender: holders hand over by their own view of the
  ring, which right after a heal may miss the owner. Only new entries travel on, so
  this ends; an owner that merged new entries starts a new epoch, so subscribers look
  for what they missed.
* Once a second, history older than its retention is dropped.
* The operator sees each handoff: ``handoff_sent`` (all chunks go in that turn, so it
  is its start and end) and ``handoff_received`` (per message, rate-limited).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from zdps.core.history import HistoryStore
from zdps.core.outbox import Outbox
from zdps.core.part import Part
from zdps.core.replication import Replication
from zdps.core.ring import HashRing
from zdps.core.sequencing import Sequencer
from zdps.wire.data import Handoff, HandoffEntry
from zdps.wire.errors import ProtocolError
from zdps.wire.limits import HANDOFF_BYTES

HISTORY_SWEEP = 1.0  # seconds between drops of expired history
HANDOFF_LOG_EVERY = 1.0  # seconds between two log lines of received handoffs


@dataclass(slots=True)
class HistoryHandoff(Part):
    """Moves the history this node holds to where the ring says it belongs."""

    node: str
    ring: HashRing
    endpoint_of: Callable[[str], str | None]
    history: HistoryStore
    replication: Replication
    sequencer: Sequencer
    bad_input: Callable[[str, str], None]
    absorbed: Callable[[str], None]  # new messages of a topic merged in (consumers.py)
    _next_sweep: float = 0.0

    def ring_changed(self, old_nodes: frozenset[str], now: float, out: Outbox) -> None:
        sends, drops = self.replication.handoffs(old_nodes)
        for node, topics in sends.items():
            entries = sum(self.hand_over(node, topic, now, out) for topic in topics)
            if topics:
                out.note("handoff_sent", to=node, topics=len(topics), entries=entries)
        for topic in drops:
            self.history.drop(topic)

    def on_handoff(self, sender: str, message: Handoff, now: float, out: Outbox) -> None:
        """History of topics we became responsible for, from another holder."""
        new = 0
        for topic, retention, stored in message.entries:
            try:
                added = self.history.absorb(topic, retention, stored, now)
            except ProtocolError as exc:  # a batch that does not unpack: that topic's rest
                self.bad_input(exc.code, f"handoff of {topic!r} from {sender}: {exc.message}")
                continue
            if not added:
                continue
            new += added
            self.absorbed(topic)
            self.sequencer.forget(topic)  # a new epoch, above what was merged
            for node in self.ring.successors(topic, self.replication.factor + 1):
                if node not in (self.node, sender):
                    self.hand_over(node, topic, now, out)
        topics = len(message.entries)
        out.note("handoff_received", every=HANDOFF_LOG_EVERY, by=sender, topics=topics, new=new)

    def hand_over(self, node: str, topic: str, now: float, out: Outbox) -> int:
        """Send ``node`` our history of ``topic`` (and its retention), in chunks; returns
        how many messages went."""
        endpoint = self.endpoint_of(node)
        if endpoint is None:
            return 0
        topic, retention, entries = self.history.export(topic, now)
        chunk: list = []
        size = 0
        for entry in entries:  # [epoch, seq, n, batch, age]
            if chunk and size + len(entry[3]) > HANDOFF_BYTES:
                out.send(endpoint, Handoff([HandoffEntry(topic, retention, chunk)]))
                chunk, size = [], 0
            chunk.append(entry)
            size += len(entry[3])
        out.send(endpoint, Handoff([HandoffEntry(topic, retention, chunk)]))
        return sum([entry[2] for entry in entries])

    def expire(self, now: float, out: Outbox) -> None:
        if now >= self._next_sweep:
            self._next_sweep = now + HISTORY_SWEEP
            self.history.expire(now)
