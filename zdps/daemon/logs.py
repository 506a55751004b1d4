"""Daemon logging: one line format, the cores' log events (bad input at most once a
second per code), and what the debug level adds (``DebugLog``)."""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

import zmq
from zmq.utils.monitor import parse_monitor_message

from zdps.core.log_events import LEVELS, LogEvent, log_event
from zdps.wire.errors import E_UNAUTHENTICATED


def setup(node: str, level: str) -> logging.Logger:
    """Log to stderr (journald picks it up under systemd)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s zdps[{node}] %(message)s"))
    logger = logging.getLogger("zdps")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger


class EventLog:
    """Writes the cores' log events at their level.

    A rate-limited event (``LogEvent.every``, and bad input: once a second per code)
    is written at most once per interval per key, with ``held_back=N`` saying how many
    lines like it were not written since the last one.
    """

    BAD_INPUT_EVERY = 1.0

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._next: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def write(self, event: LogEvent, now: float) -> None:
        if event.every:
            self._limited(event.event, event, now, event.every)
        else:
            self._logger.log(_LEVELS[event.level], "%s", event)

    def bad_input(self, code: str, message: str, now: float) -> None:
        """Input refused as ``code``, described by ``message`` (which names its sender)."""
        event = log_event("bad_input", "warning", code=code, what=message)
        self._limited(f"bad_input:{code}", event, now, self.BAD_INPUT_EVERY)

    def refused(self, why: str, where: str, now: float) -> None:
        """A connection CURVE refused (``unauthenticated``): one line per second for each
        reason, so that a stranger's retries do not hide a misconfigured node."""
        event = log_event("bad_input", "warning", code=E_UNAUTHENTICATED, what=f"{where}: {why}")
        self._limited(f"refused:{why}", event, now, self.BAD_INPUT_EVERY)

    def _limited(self, key: str, event: LogEvent, now: float, every: float) -> None:
        if now < self._next.get(key, 0.0):
            self._held[key] = self._held.get(key, 0) + 1
            return
        held = self._held.pop(key, 0)
        self._logger.log(_LEVELS[event.level], "%s%s", event, f" held_back={held}" if held else "")
        self._next[key] = now + every


_LEVELS = {name: getattr(logging, name.upper()) for name in LEVELS}


DEBUG_EVERY = 10.0  # seconds between two debug status lines, when something changed


class DebugLog:
    """What ``log_level = debug`` adds: a few lines per event, never one per message.

    Each connection to the API or PUB socket and its end (from socket monitors), each
    change in the number of local groups, and every ``DEBUG_EVERY`` seconds, if any of
    it changed, the peers, groups, detector and non-zero counters. Made only at that
    level (``make``), so that no other level pays for the monitors.
    """

    EVENTS = zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED

    def __init__(
        self,
        logger: logging.Logger,
        poller: Any,
        sockets: dict[str, zmq.Socket],
        settings: dict[str, Any],
    ) -> None:
        self._logger = logger
        logger.debug("settings %s", " ".join(f"{k}={v}" for k, v in settings.items()))
        self._monitors = {
            sock.get_monitor_socket(self.EVENTS): name for name, sock in sockets.items()
        }
        for monitor in self._monitors:
            poller.register(monitor, zmq.POLLIN)
        self._pubs = {sockets.get("pub"), sockets.get("batch_pub")} - {None}
        self._addresses: dict[tuple[str, int], str] = {}  # (socket name, fd): peer address
        self._groups = 0
        self._last: dict[str, Any] = {}
        self._next = 0.0

    @classmethod
    def make(cls, logger: logging.Logger, *args: Any) -> DebugLog | None:
        """A DebugLog (the arguments of ``__init__``) if ``logger`` logs debug lines."""
        return cls(logger, *args) if logger.isEnabledFor(logging.DEBUG) else None

    def turn(self, ready: dict[Any, int], status: Callable[[], dict[str, Any]], now: float) -> None:
        """Log what this turn of the loop changed; ``status`` is the node's status view."""
        for monitor, name in self._monitors.items():
            if monitor in ready:
                self._events(monitor, name)
        view: dict[str, Any] | None = None
        if self._pubs & ready.keys():
            view = status()
            groups = view["groups"]["local"]
            if groups != self._groups:
                self._logger.debug("local groups %d -> %d", self._groups, groups)
                self._groups = groups
        if now >= self._next:
            self._next = now + DEBUG_EVERY
            self._summary(view or status())

    def _events(self, monitor: zmq.Socket, name: str) -> None:
        while monitor.poll(0):
            event = parse_monitor_message(monitor.recv_multipart())
            fd = event["value"]
            if event["event"] == zmq.EVENT_ACCEPTED:
                address = self._addresses[name, fd] = _peer_address(fd)
                self._logger.debug("%s connection from %s accepted (fd %d)", name, address, fd)
            else:
                address = self._addresses.pop((name, fd), "?")
                self._logger.debug("%s connection from %s closed (fd %d)", name, address, fd)

    def _summary(self, view: dict[str, Any]) -> None:
        detector = view["detector"]
        summary = {
            "peers": ",".join(f"{p['node']}:{p['state']}" for p in view["peers"]) or "-",
            "ring": len(view["ring"]["nodes"]),
            "groups": f"{view['groups']['local']}/{view['groups']['cluster']}",
            "connections": len(self._addresses),
            "pending_acks": view["pending_acks"],
            "paused": view["paused"],
            "suspected": detector["suspected"],
            "refuted": detector["refuted"],
            **{name: n for name, n in view["counters"].items() if n},
            **{f"error.{code}": n for code, n in view["errors"].items()},
        }
        if summary != self._last:
            self._last = summary
            self._logger.debug("status %s", " ".join(f"{k}={v}" for k, v in summary.items()))

    def close(self) -> None:
        for monitor in self._monitors:
            monitor.close(0)


def _peer_address(fd: int) -> str:
    """host:port of the connection on ``fd``, or "?" once it is gone."""
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:
            peer = sock.getpeername()
    except OSError:
        return "?"
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else peer or "a local socket"
