"""The lifecycle every part of ``NodeCore`` shares, so the core runs them in one loop.

A part owns one concern's state (pending acks, barriers, watches, ...). When a peer
goes down, the ring changes or time passes, ``NodeCore`` calls the same hook on every
part, and each writes what it decides into the outbox it is handed.
"""

from __future__ import annotations

from zdps.core.outbox import Outbox


class Part:
    """Hooks default to doing nothing; a part overrides the ones its concern needs."""

    __slots__ = ()

    def peer_down(self, node: str, out: Outbox) -> None:
        """``node`` went down: what waited on it fails or moves elsewhere."""

    def ring_changed(self, old_nodes: frozenset[str], now: float, out: Outbox) -> None:
        """The ring's nodes changed from ``old_nodes``: ownership may have moved."""

    def expire(self, now: float, out: Outbox) -> None:
        """Timers: whatever has waited too long is ended."""
