"""Daemon logging: one line format, the cores' log events (bad input at most once a
second per code), and what the debug level adds (``DebugLog``)."""

from __future__ import annotations

import functools
import logging
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

import zmq

from zdps.core.log_events import LEVELS, LogEvent, log_event
from zdps.daemon.log_format import JsonFormatter, TextFormatter, under_journald
from zdps.daemon.monitors import SocketEvent, SocketMonitor


def setup(node: str, level: str, form: str = "text") -> logging.Logger:
    """Log to stderr (journald picks it up under systemd), as ``form`` says
    (``log_format.py``)."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter(node) if form == "json" else TextFormatter(node, under_journald())
    handler.setFormatter(formatter)
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

    def refused(self, code: str, why: str, where: str, now: float) -> None:
        """A connection refused (by CURVE, ``unauthenticated``, or a limit): one line per
        second for each reason, so that a stranger's retries do not hide a
        misconfigured node."""
        event = log_event("bad_input", "warning", code=code, what=f"{where}: {why}")
        self._limited(f"refused:{why}", event, now, self.BAD_INPUT_EVERY)

    def _limited(self, key: str, event: LogEvent, now: float, every: float) -> None:
        if now < self._next.get(key, 0.0):
            self._held[key] = self._held.get(key, 0) + 1
            return
        held = self._held.pop(key, 0)
        suffix = f" held_back={held}" if held else ""
        self._logger.log(_LEVELS[event.level], "%s%s", event, suffix, extra={"held_back": held})
        self._next[key] = now + every


_LEVELS = {name: getattr(logging, name.upper()) for name in LEVELS}


DEBUG_EVERY = 10.0  # seconds between two debug status lines, when something changed


class DebugLog:
    """What ``log_level = debug`` adds: a few lines per event, never one per message.

    Each connection to the API or PUB socket and its end (from socket monitors), each
    change in the number of local groups, and every ``DEBUG_EVERY`` seconds, if any of
    it changed, the peers, groups, detector and non-zero counters. Made only at that
    level, so that no other level pays for the API socket's monitor.
    """

    def __init__(
        self,
        logger: logging.Logger,
        monitors: dict[str, SocketMonitor],
        sockets: dict[str, zmq.Socket],
        settings: dict[str, Any],
    ) -> None:
        self._logger = logger
        logger.debug("settings %s", " ".join(f"{k}={v}" for k, v in settings.items()))
        for name in sockets:
            monitors[name].listeners.append(functools.partial(self._event, name))
        self._pubs = {sockets.get("pub"), sockets.get("batch_pub")} - {None}
        self._addresses: dict[tuple[str, int], str] = {}  # (socket name, fd): peer address
        self._groups = 0
        self._last: dict[str, Any] = {}
        self._next = 0.0

    def turn(self, ready: dict[Any, int], status: Callable[[], dict[str, Any]], now: float) -> None:
        """Log what this turn of the loop changed; ``status`` is the node's status view."""
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

    def _event(self, name: str, event: SocketEvent, _now: float) -> None:
        fd = event.value
        if event.kind == zmq.EVENT_ACCEPTED:
            address = self._addresses[name, fd] = _peer_address(fd)
            self._logger.debug("%s connection from %s accepted (fd %d)", name, address, fd)
        elif event.kind == zmq.EVENT_DISCONNECTED:
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


def _peer_address(fd: int) -> str:
    """host:port of the connection on ``fd``, or "?" once it is gone."""
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:
            peer = sock.getpeername()
    except OSError:
        return "?"
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else peer or "a local socket"
