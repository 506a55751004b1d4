"""One topic's pushes to many WebSockets, at the cost of a write per socket.

The sockets of a topic are kept grouped by what they receive: sockets that joined with
one join_ref, positioned or not, get the same bytes. So each message is made into JSON
and into a WebSocket frame once per group, not once per socket, and written to each
socket's transport as it is. A server's frames are neither masked nor (compression off)
compressed, so the bytes are what ``websockets`` would write itself; going around its
per-socket framing halves the CPU of a delivery (bench/gateway).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from zdps.gateway.phoenix import PhoenixSocket
from zdps.gateway.recovery import Recovery

Channel = tuple[str, bool]  # (join_ref, positioned): which push a socket gets


def wire_frame(message: str | bytes) -> bytes:
    """``message`` as one unmasked, uncompressed WebSocket frame: text for a str."""
    if isinstance(message, str):
        return Frame(Opcode.TEXT, message.encode()).serialize(mask=False)
    return Frame(Opcode.BINARY, message).serialize(mask=False)


@dataclass(slots=True)
class Feed:
    """One topic's zdps subscription and the sockets it is pushed to.

    Every socket of ``sockets`` is either in the group of its channel (``groups``, live)
    or recovering (``catching``, its live messages kept in its Recovery), never both.
    """

    ready: asyncio.Event = field(default_factory=asyncio.Event)
    sockets: dict[ServerConnection, PhoenixSocket] = field(default_factory=dict)
    task: asyncio.Task | None = None
    error: str | None = None
    catching: dict[ServerConnection, Recovery] = field(default_factory=dict)
    groups: dict[Channel, dict[ServerConnection, None]] = field(default_factory=dict)
    _channel: dict[ServerConnection, Channel] = field(default_factory=dict)

    def add(
        self, ws: ServerConnection, sock: PhoenixSocket, channel: Channel,
        recovery: Recovery | None,
    ) -> None:  # fmt: skip
        """``ws`` joined (or joined again) with ``channel``: live, or recovering first."""
        self.remove(ws)
        self.sockets[ws] = sock
        if recovery is None:
            self._group(ws, channel)
        else:
            self.catching[ws] = recovery

    def caught_up(self, ws: ServerConnection, recovery: Recovery) -> None:
        """``ws``'s recovery is over: from now on it gets live messages (if it still
        belongs here, and no later join started another recovery)."""
        if self.catching.get(ws) is not recovery:
            return
        del self.catching[ws]
        channel = self.sockets[ws].channel(recovery.topic)
        if channel is not None:
            self._group(ws, channel)

    def remove(self, ws: ServerConnection) -> None:
        """``ws`` gets nothing more of this topic."""
        self.sockets.pop(ws, None)
        self.catching.pop(ws, None)
        channel = self._channel.pop(ws, None)
        if channel is not None:
            group = self.groups[channel]
            del group[ws]
            if not group:
                del self.groups[channel]

    def _group(self, ws: ServerConnection, channel: Channel) -> None:
        self._channel[ws] = channel
        self.groups.setdefault(channel, {})[ws] = None

    def push(
        self, frame_for: Callable[[Channel], bytes | None], max_send_buffer: int
    ) -> tuple[int, list[ServerConnection]]:
        """Write a message to every live socket (``frame_for`` makes its frame, once per
        group; None: none for that group): how many got it, and the sockets that were
        not sent it because over ``max_send_buffer`` bytes wait unread."""
        pushed, slow = 0, []
        for channel, group in self.groups.items():
            data = frame_for(channel)
            if data is None:
                continue
            for ws in group:
                if ws.protocol.state is not State.OPEN:
                    continue  # closing: its handler ends and takes it out
                transport = ws.transport
                if transport.get_write_buffer_size() > max_send_buffer:
                    slow.append(ws)
                else:
                    transport.write(data)
                    pushed += 1
        return pushed, slow
