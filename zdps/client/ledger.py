"""The books of one ``publish_stream``: its frames in flight, settled by runs of acks.

The fastest way to publish counts acknowledgements instead of building a result per
message. Acks come as runs (docs/PROTOCOL.md §7.4) and the stream's frames hold
consecutive refs, so a run settles whole frames at once: no work per message.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

from zdps.client.protocol import PublishError
from zdps.wire import E_TIMEOUT


@dataclass(slots=True)
class StreamResult:
    """What ``publish_stream`` achieved: acknowledged messages and every failure."""

    acked: int = 0
    failures: list[PublishError] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.acked + len(self.failures)


class StreamLedger:
    """The frames of one publish stream that are in flight, settled by acks and nacks.

    Frames hold consecutive refs (``Session.reserve``); each has a deadline. An ack or
    nack for a ref of a frame that is still open settles it; one for a frame that
    already expired is not the stream's any more (the session drops it as late).
    """

    def __init__(self) -> None:
        self.acked = 0
        self.failures: list[PublishError] = []
        self.unsettled = 0  # messages sent and neither acked, nacked nor expired
        self._end = 0  # refs below this were handed to the stream
        self._starts: list[int] = []  # first ref of each frame sent, ascending
        self._head = 0  # frames before this index are settled or expired
        self._open: dict[int, list] = {}  # first ref -> [end, unsettled, deadline]

    def add(self, first: int, count: int, deadline: float) -> None:
        """Note a frame of ``count`` refs from ``first`` on, about to be sent."""
        self._starts.append(first)
        self._open[first] = [first + count, count, deadline]
        self._end = first + count
        self.unsettled += count

    def settle(self, ref: int, count: int, error: PublishError | None = None) -> int:
        """Acknowledge (or, with ``error``, fail) ``count`` refs from ``ref`` on.

        Returns how many of them were the stream's open refs (and are now settled).
        """
        starts, head = self._starts, self._head
        if head >= len(starts):
            return 0
        low, high = max(ref, starts[head]), min(ref + count, self._end)
        i = max(head, bisect_right(starts, low, head) - 1)
        settled = 0
        while i < len(starts) and starts[i] < high:
            start = starts[i]
            frame = self._open.get(start)
            if frame is not None:
                taken = min(high, frame[0]) - max(low, start)
                if taken > 0:
                    frame[1] -= taken
                    settled += taken
                    if frame[1] <= 0:
                        del self._open[start]
            i += 1
        if settled:
            self.unsettled -= settled
            if error is None:
                self.acked += settled
            else:
                self.failures += [error] * settled
            self._advance()
        return settled

    def oldest_deadline(self) -> float | None:
        """The deadline of the oldest frame that is still open."""
        self._advance()
        if self._head < len(self._starts):
            return self._open[self._starts[self._head]][2]
        return None

    def expire(self, now: float, message: str) -> list[float]:
        """Fail every open frame whose deadline has passed; returns their deadlines."""
        expired = []
        while (deadline := self.oldest_deadline()) is not None and deadline <= now:
            start = self._starts[self._head]
            _end, unsettled, _ = self._open.pop(start)
            self.unsettled -= unsettled
            self.failures += [PublishError(E_TIMEOUT, message)] * unsettled
            expired.append(deadline)
        return expired

    def _advance(self) -> None:
        starts, head = self._starts, self._head
        while head < len(starts) and starts[head] not in self._open:
            head += 1
        if head > 1024 and head * 2 > len(starts):
            del starts[:head]
            head = 0
        self._head = head
