"""Flow control: a bounded number of data entries in flight to each peer (§7.7).

* Every entry of a data kind (``EntryList.DATA``: fwd, close, configure, fanout, closed,
  store) sent to a peer is *in flight* until that peer confirms it processed it with
  ``consumed``. Entries skipped as bad count as processed.
* A receiver sums what it processed per peer and confirms once that exceeds 1/8 of
  the window (at the end of that turn), else at its next tick: a confirmation per
  turn would cost a frame per message at low rates.
* A node with more than ``window`` entries in flight to any peer is *saturated*: it
  sets arriving ``fwd`` messages aside whole (``defer``, oldest first, so forwards keep
  their order) and the IO layer stops reading client frames, until confirmations
  bring every count back. Fan-out copies are always delivered and confirmed, so
  back-pressure reaches the publishers and never forms a cycle of nodes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from zdps.core.outbox import Outbox
from zdps.core.part import Part
from zdps.wire.data import Consumed, Forward

LOG_EVERY = 5.0  # seconds between two log lines of pauses (or of resumes)


@dataclass(slots=True)
class FlowControl(Part):
    """In-flight counts per peer, confirmations owed, and forwards held while saturated."""

    window: int = 20_000
    inflight: dict[str, int] = field(default_factory=dict)  # sent to a peer, unconfirmed
    owed: dict[str, int] = field(default_factory=dict)  # processed from a peer, unconfirmed
    deferred: deque[tuple[str, Forward]] = field(default_factory=deque)  # oldest first
    _reported: bool = False  # saturated, as last reported

    def sent(self, node: str, count: int = 1) -> None:
        self.inflight[node] = self.inflight.get(node, 0) + count

    def processed(self, sender: str, count: int) -> None:
        """``count`` data entries from ``sender`` were handled: confirm them soon."""
        self.owed[sender] = self.owed.get(sender, 0) + count

    def on_consumed(self, sender: str, message: Consumed) -> None:
        """``sender`` confirmed ``count`` of the entries we sent it."""
        self.inflight[sender] = max(0, self.inflight.get(sender, 0) - message.count)

    @property
    def saturated(self) -> bool:
        """More than ``window`` entries unconfirmed by some peer: take no new work."""
        window = self.window
        return any(count > window for count in self.inflight.values())

    def report(self, out: Outbox) -> bool:
        """Tell the operator of a pause (or resume) since the last report; True when a
        pause starts."""
        saturated = self.saturated
        if saturated == self._reported:
            return False
        self._reported = saturated
        if saturated:
            peers = ",".join(self.over_window())
            out.note("flow_paused", every=LOG_EVERY, peers=peers, window=self.window)
        else:
            out.note("flow_resumed", every=LOG_EVERY, window=self.window)
        return saturated

    def over_window(self) -> list[str]:
        """The peers that keep this node saturated."""
        return sorted(node for node, count in self.inflight.items() if count > self.window)

    def defer(self, sender: str, message: Forward) -> bool:
        """Set ``message`` aside if saturated (or if older forwards still wait)."""
        if self.deferred or self.saturated:
            self.deferred.append((sender, message))
            return True
        return False

    def confirm(self, out: Outbox, endpoint_of: Callable[[str], str | None], all_: bool) -> None:
        """Send ``consumed``: a peer's once over 1/8 of the window, or ``all_`` of them."""
        threshold = 0 if all_ else self.window // 8
        for sender in [s for s, count in self.owed.items() if count > threshold]:
            endpoint = endpoint_of(sender)
            if endpoint is not None:
                out.send(endpoint, Consumed(self.owed[sender]))
            del self.owed[sender]

    def peer_down(self, node: str, out: Outbox) -> None:
        """What was in flight to ``node`` no longer counts."""
        self.inflight.pop(node, None)
        self.owed.pop(node, None)
