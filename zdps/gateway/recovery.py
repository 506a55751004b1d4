"""A rejoining socket's recovery (docs/GATEWAY.md, "Recovery"): no IO.

A channel joined with ``since: {epoch, seq}`` first gets what history holds after that
position, then the live messages that arrived meanwhile (the topic's feed buffers them
for the socket), each message once and in ``(epoch, seq)`` order, then goes live. A
range of one epoch that is missing on the way becomes one ``gap`` event in its place,
as ``zdps subscribe --since`` reports it; the unknown tail of an older epoch is not one
(nothing says it existed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zdps.client.recovery import Gap
from zdps.gateway.phoenix import Position

Entry = tuple[int, int, bytes]  # epoch, seq, payload


@dataclass(slots=True)
class Recovery:
    """Where one socket's recovery is: the last position it was sent."""

    topic: str
    last: Position
    buffered: list[Entry] = field(default_factory=list)  # live messages meanwhile

    def take(self, entries: list[Entry]) -> list[Entry | Gap]:
        """What to send of ``entries`` (in order): each entry after ``last``, a gap first
        where its epoch skips seqs."""
        out: list[Entry | Gap] = []
        for entry in entries:
            epoch, seq = entry[0], entry[1]
            if (epoch, seq) <= self.last:
                continue
            if epoch == self.last[0] and seq > self.last[1] + 1:
                out.append(Gap(self.topic, epoch, self.last[1] + 1, seq - 1))
            out.append(entry)
            self.last = (epoch, seq)
        return out

    def finish(self) -> list[Entry | Gap]:
        """History is done: the live messages buffered meanwhile, then the socket is live."""
        buffered, self.buffered = self.buffered, []
        return self.take(sorted(buffered, key=lambda entry: entry[:2]))
