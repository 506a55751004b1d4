"""Copies nobody waits on, to a replica that delivers to nobody: one frame per COPY_PACE.

An owner sends each batch it sequences to the topic's replicas (``store``). When the
replica has no subscriber of the topic and no ``replicated`` publish waits on it, that
copy only keeps the history safe, and nothing is late if it waits a little: at a
moderate rate every copy would otherwise be a frame of its own, and each frame costs
both nodes a wake-up, which on a small machine costs more than the message itself.

So such a copy joins the turn's frame to that replica if there is one; otherwise it
goes at once when nothing went there for COPY_PACE, else it waits until COPY_PACE after
the last frame, together with every copy that came meanwhile. Order per destination
is kept: held copies leave before anything queued after them. The price: an owner that
crashes loses at most COPY_PACE of copies that were acknowledged at the ``owner`` level,
which promises no more (docs/FAILURES.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from zdps.core.outbox import Outbox
from zdps.wire.codec import EntryList, NodeMessage

COPY_PACE = 0.001  # seconds between two frames to a replica that carry only such copies


@dataclass(slots=True)
class CopyPacing:
    """Lazy copies held per replica endpoint, and when a frame last went to each peer."""

    pace: float = COPY_PACE
    due: float = math.inf  # when ``release`` next has something held to send
    _held: dict[str, list[NodeMessage]] = field(default_factory=dict)
    _last: dict[str, float] = field(default_factory=dict)  # when a frame last went

    def release(self, now: float, out: Outbox) -> None:
        """Settle the turn's lazy copies (``out.lazy``): put in ``out.peers`` what goes
        now, in order, and hold the rest. A peer that gets anything else (a ``bye`` at
        shutdown too) gets what is held for it first."""
        for endpoint in out.disconnects:
            self._held.pop(endpoint, None)
        for endpoint, messages in out.lazy.items():
            held = self._held.get(endpoint)
            if held is None:
                self._held[endpoint] = messages
            else:
                _join(held, messages)
        out.lazy = {}
        if self._held:
            self._settle(now, out)
        else:
            self.due = math.inf
        if out.peers:
            last = self._last
            for endpoint in out.peers:
                last[endpoint] = now
            if len(last) > 1000:  # forget peers that are quiet anyway
                self._last = {e: at for e, at in last.items() if now - at < self.pace}

    def _settle(self, now: float, out: Outbox) -> None:
        peers, due = out.peers, math.inf
        for endpoint in list(self._held):
            queued = peers.get(endpoint)
            if queued is None:
                ready_at = self._last.get(endpoint, -math.inf) + self.pace
                if now < ready_at:
                    due = min(due, ready_at)
                    continue
            held = self._held.pop(endpoint)
            if queued:
                _join(held, queued)
            peers[endpoint] = held
        self.due = due

    def __len__(self) -> int:
        """Messages held."""
        return sum(len(messages) for messages in self._held.values())


def _join(messages: list[NodeMessage], more: list[NodeMessage]) -> None:
    """Append ``more`` to ``messages``, the first into the last if both are entry lists
    of one kind (one ``store`` message for copies queued in two turns)."""
    if more and type(more[0]) is type(messages[-1]) and isinstance(more[0], EntryList):
        messages[-1].entries.extend(more[0].entries)  # type: ignore[attr-defined]
        more = more[1:]
    messages += more
