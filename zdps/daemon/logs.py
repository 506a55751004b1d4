"""Daemon logging: one line format, and bad-input reports at most once a second per kind."""

from __future__ import annotations

import logging
import sys


def setup(node: str, level: str) -> logging.Logger:
    """Log to stderr (journald picks it up under systemd)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s zdps[{node}] %(message)s"))
    logger = logging.getLogger("zdps")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger


class RateLimitedLog:
    """Logs the first report of each kind per interval and counts the ones it held back."""

    def __init__(self, logger: logging.Logger, interval: float = 1.0) -> None:
        self._logger = logger
        self._interval = interval
        self._next: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def report(self, kind: str, message: str, now: float) -> None:
        if now < self._next.get(kind, 0.0):
            self._held[kind] = self._held.get(kind, 0) + 1
            return
        held = self._held.pop(kind, 0)
        suffix = f" ({held} more like it since the last report)" if held else ""
        self._logger.warning("bad input [%s]: %s%s", kind, message, suffix)
        self._next[kind] = now + self._interval
