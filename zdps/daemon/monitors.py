"""Socket monitors: the connections of a bound socket, as events for whoever needs them.

libzmq keeps one monitor per socket (a second ``zmq_socket_monitor`` replaces the
first), yet several parts of the daemon want a socket's connection events: the local PUBs
(which connection holds which subscriptions, ``pubs.py``), the connection limit
(``gate.py``), CURVE (handshakes that fail before ZAP is asked, ``security.py``) and the
debug log. So each socket gets one monitor for all of them, started before the socket
binds so that no connection goes unseen.

Monitors are not polled: every socket in the poll set costs every wake-up of the loop,
and the latency of a busy node grows with its CPU. They are pumped at each timer tick
(at least every heartbeat interval), and at once where an event must come first: before
a PUB's subscription report, before ZAP admits a client. Their queue is unbounded, so
no event is dropped meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import zmq

from zdps.socket_monitor import unwatch, watch

CONNECTIONS = zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED
HANDSHAKE_FAILED = zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL


class SocketEvent(NamedTuple):
    """One monitor event: its kind (``zmq.EVENT_*``), its value (a file descriptor for
    connections, an errno or protocol error for failures) and the socket's endpoint."""

    kind: int
    value: int
    endpoint: str


Listener = Callable[[SocketEvent, float], None]


class SocketMonitor:
    """The monitor of one socket, handing each event to every listener."""

    def __init__(self, sock: zmq.Socket, name: str, events: int) -> None:
        self.monitored = sock
        self.socket = watch(sock, events, name)  # unbounded: keeps every event till a pump
        self.name = name  # the monitored socket's name: "api", "pub", ...
        self.listeners: list[Listener] = []

    def pump(self, now: float) -> None:
        """Hand every event waiting so far to the listeners, in order: all of them (a
        PUB relies on a connection's accept having been handled before its reports)."""
        recv = self.socket.recv_multipart
        while True:
            try:
                event = parse(recv(zmq.NOBLOCK))
            except zmq.Again:
                return
            for listener in self.listeners:
                listener(event, now)

    def close(self) -> None:
        """Before the monitored socket closes (socket_monitor.py)."""
        unwatch(self.monitored)


def parse(frames: list[bytes]) -> SocketEvent:
    """A monitor message (6 bytes: event, value; then the endpoint) as a SocketEvent."""
    head = frames[0] if frames and len(frames[0]) >= 6 else bytes(6)
    kind, value = int.from_bytes(head[:2], "little"), int.from_bytes(head[2:6], "little")
    endpoint = frames[1].decode(errors="replace") if len(frames) > 1 else "?"
    return SocketEvent(kind, value, endpoint)


def bind_monitored(
    ctx: zmq.Context, monitors: dict[str, SocketMonitor], name: str, kind: int, endpoint: str,
    events: int, **options: int,
) -> zmq.Socket:  # fmt: skip
    """A socket bound to ``endpoint``, with LINGER 0 and ``options``, its monitor for
    ``events`` (if any) in ``monitors[name]``, started before it binds so that no
    connection goes unseen."""
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    for option, value in options.items():
        sock.setsockopt(getattr(zmq, option.upper()), value)
    if events:
        monitors[name] = SocketMonitor(sock, name, events)
    sock.bind(endpoint)
    return sock
