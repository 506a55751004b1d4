"""Running a session's operations by hand: no sockets, a clock the test moves.

``Run`` holds the step an operation waits on; the test answers it (``resume``),
feeds the session what the node would have sent (``Session.absorb`` with the frames
below), or moves the clock. Emitted items are collected, and a Drain needs no answer.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from zdps.client.steps import Drain, Emit, Send, Step
from zdps.wire import encode_api, unpack

NODE = "tcp://127.0.0.1:7711"
_RUNNING: Any = object()


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Run:
    """One operation of a session, stepped by the test."""

    def __init__(self, op: Generator[Step, Any, Any]) -> None:
        self.op = op
        self.emitted: list = []
        self.result: Any = _RUNNING
        self.step: Step | None = None
        self._go(lambda: next(op))

    @property
    def done(self) -> bool:
        return self.result is not _RUNNING

    def resume(self, value: Any = None) -> Step | None:
        """Answer the current step with ``value``; the next step it waits on."""
        self._go(lambda: self.op.send(value))
        return self.step

    def sends(self) -> list[list]:
        """Answer Send steps with True while it takes them; the frames, decoded."""
        frames = []
        while isinstance(self.step, Send):
            frames.append(unpack(self.step.frame))
            self.resume(True)
        return frames

    def _go(self, advance: Any) -> None:
        try:
            step = advance()
            while isinstance(step, Emit | Drain):
                if isinstance(step, Emit):
                    self.emitted += step.items
                step = next(self.op)
        except StopIteration as done:
            self.step, self.result = None, done.value
            return
        self.step = step


def sent(step: Step | None) -> list:
    """The frame of a Send step, decoded."""
    assert isinstance(step, Send), step
    return unpack(step.frame)


def ack(*runs: tuple[int, int, int, int, int]) -> bytes:
    """Runs ``(ref, seq, nodes, subscribers, n)``."""
    return encode_api("ack", [list(run) for run in runs])


def nack(*entries: tuple[int, str, str, int]) -> bytes:
    """Entries ``(ref, code, message, n)``: ``n`` refs from ``ref`` on refused."""
    return encode_api("nack", [list(entry) for entry in entries])


def rep(ref: int, result: Any, ok: bool = True) -> bytes:
    return encode_api("rep", ref, ok, result)


def event(ref: int, body: dict) -> bytes:
    return encode_api("event", ref, body)
