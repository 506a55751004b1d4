"""Failure detectors: decide when a silent peer is dead.

Membership asks a detector, never a clock, so the heartbeat detector used today can be
replaced by a SWIM detector (probes, indirect probes, suspicion) without touching the
membership protocol.
"""

from __future__ import annotations

from typing import Protocol


class FailureDetector(Protocol):
    """What membership needs from a failure detector."""

    def heard(self, peer: str, now: float) -> None:
        """Anything arrived from ``peer`` at ``now``."""

    def forget(self, peer: str) -> None:
        """``peer`` is no longer watched (it left, died or restarted)."""

    def dead(self, now: float) -> list[str]:
        """Peers to declare dead at ``now``; each is reported once, then forgotten."""

    def next_deadline(self) -> float | None:
        """The earliest time at which ``dead`` may return something new."""


class HeartbeatDetector:
    """Declares a peer dead after ``timeout`` seconds without hearing from it.

    Every peer sends a ping every heartbeat interval and any message counts as a sign
    of life, so the timeout must cover several intervals plus scheduling jitter.
    """

    def __init__(self, timeout: float) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.timeout = timeout
        self._last: dict[str, float] = {}

    def heard(self, peer: str, now: float) -> None:
        self._last[peer] = now

    def forget(self, peer: str) -> None:
        self._last.pop(peer, None)

    def dead(self, now: float) -> list[str]:
        limit = now - self.timeout
        gone = [peer for peer, last in self._last.items() if last <= limit]
        for peer in gone:
            del self._last[peer]
        return gone

    def next_deadline(self) -> float | None:
        return min(self._last.values()) + self.timeout if self._last else None
