"""systemd's notify protocol, written by hand: one datagram per message to
``$NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract namespace), no libsystemd.

``READY=1`` once the node has joined its cluster, or knows it is alone (its seeds did
not answer within ``peer_timeout``); ``STATUS=`` with its peers and topics whenever
they change; ``WATCHDOG=1`` every half ``$WATCHDOG_USEC``, sent by the event loop
itself, so a loop that is stuck stops the pings and systemd restarts the node;
``RELOADING=1`` then ``READY=1`` around a SIGHUP reload; ``STOPPING=1`` when it leaves.
Without ``$NOTIFY_SOCKET`` (not run by systemd with ``Type=notify``) nothing is sent.
A datagram that cannot be sent is dropped: systemd's notify socket never blocks us.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Mapping

STATUS_EVERY = 1.0  # seconds between two looks at whether STATUS= changed


class SystemdNotifier:
    """What the daemon tells systemd, and when."""

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        address = environ.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._socket: socket.socket | None = None
        if self._address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.setblocking(False)
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        watched = usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        self.watchdog_every = int(usec) / 2e6 if watched else None  # seconds, or no watchdog
        self._next_ping = 0.0
        self._next_status = 0.0
        self._status = ""
        self.ready = False
        self.stopped = False

    @property
    def active(self) -> bool:
        return self._socket is not None

    def tick(self, now: float, joined: bool, status: Callable[[], str]) -> None:
        """Each turn of the loop: READY=1 once ``joined``, STATUS= when it changed (looked
        at every STATUS_EVERY), and the watchdog ping when due."""
        if not self.active:
            return
        lines = []
        if joined and not self.ready:
            self.ready = True
            lines.append("READY=1")
        if now >= self._next_status:
            self._next_status = now + STATUS_EVERY
            text = status()
            if text != self._status:
                self._status = text
                lines.append(f"STATUS={text}")
        if self.watchdog_every is not None and now >= self._next_ping:
            self._next_ping = now + self.watchdog_every
            lines.append("WATCHDOG=1")
        if lines:
            self.send(*lines)

    def reloading(self) -> None:
        """Before a reload; ``reloaded`` after it."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def reloaded(self) -> None:
        self.send("READY=1")

    def stopping(self) -> None:
        """Once, when the node begins to drain or leave."""
        if not self.stopped:
            self.stopped = True
            self.send("STOPPING=1")

    def send(self, *lines: str) -> None:
        if self._socket is None:
            return
        # No systemd listening any more, or its queue is full: the next one goes.
        with contextlib.suppress(OSError):
            self._socket.sendto("\n".join(lines).encode(), self._address)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
