"""Acknowledgements nobody waits on alone, at most one frame of them per ACK_PACE.

A publisher with a window (``publish_stream``, ``publish_many``) has other publishes in
flight while one is acknowledged, so it does not wait on that acknowledgement alone:
it marks its batches ``lazy`` (docs/PROTOCOL.md §7.4, §8.1), and so does every hop
that forwards them. At a moderate rate every acknowledgement is otherwise a frame of
its own, and each frame costs both sides a wake-up, which on a small machine costs more
than the message itself. So a lazy acknowledgement to a destination goes at once when
none went there for ACK_PACE, else it waits until ACK_PACE after the last, with all the
others that came meanwhile: one frame per millisecond per destination at most, and at
most a millisecond late. An acknowledgement that is not lazy (a single ``publish``,
or the batch a windowed publisher waits on next) and every refusal go at once; such an
acknowledgement, and a refusal by a hop or the owner, take what is held for their
destination with them, ahead of them (``Routes``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from zdps.core.outbox import Outbox

ACK_PACE = 0.001  # seconds between two frames of lazy acknowledgements to one destination
Held = tuple[int, int, int, int, int]  # (ref or ack_id, seq, nodes, subscribers, n)


@dataclass(slots=True)
class AckPacing:
    """Lazy acknowledgements held per destination (a client, or a peer node)."""

    endpoint_of: Callable[[str], str | None]
    pace: float = ACK_PACE
    due: float = math.inf  # when ``release`` next has something to send
    _held: dict[bytes | str, list[Held]] = field(default_factory=dict)
    _last: dict[bytes | str, float] = field(default_factory=dict)  # when acks last went

    def hold(self, target: bytes | str, ref: int, seq: int, nodes: int, subscribers: int, n: int):
        """Keep an acknowledgement for ``target`` until ``release`` lets it go."""
        self._held.setdefault(target, []).append((ref, seq, nodes, subscribers, n))
        self.due = -math.inf  # looked at when the turn ends

    def release(self, now: float, out: Outbox) -> None:
        """Send what may go now: each destination's held acknowledgements once ACK_PACE
        went by since its last ones."""
        if now < self.due:
            return
        due = math.inf
        for target in list(self._held):
            ready_at = self._last.get(target, -math.inf) + self.pace
            if now < ready_at:
                due = min(due, ready_at)
                continue
            self._send(target, self._held.pop(target), out)
            self._last[target] = now
        self.due = due
        if len(self._last) > 1000:  # forget destinations that are quiet anyway
            self._last = {t: at for t, at in self._last.items() if now - at < self.pace}

    def _send(self, target: bytes | str, acks: list[Held], out: Outbox) -> None:
        if type(target) is bytes:
            for ack in acks:
                out.client_ack(target, *ack)
            return
        endpoint = self.endpoint_of(target)  # type: ignore[arg-type]
        if endpoint is not None:
            for ack in acks:
                out.ack(endpoint, *ack)

    def send_held(self, target: bytes | str, out: Outbox) -> None:
        """Something for ``target`` goes at once: what is held for it goes first, in the
        same frame (its publisher may be waiting on it: docs/PROTOCOL.md §7.4)."""
        held = self._held.pop(target, None)
        if held is not None:
            self._send(target, held, out)

    def forget(self, target: bytes | str) -> None:
        """``target`` is gone (a peer went down): what waits for it is dropped (the
        hop that forwarded refuses its own pending batches)."""
        self._held.pop(target, None)
        self._last.pop(target, None)

    def __len__(self) -> int:
        return sum(len(acks) for acks in self._held.values())
