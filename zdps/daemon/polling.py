"""Receiving without waste: a poller and drains that cost as little per frame as pyzmq allows.

At full speed a daemon spends more time in pyzmq's per-call overhead than in zdps, so
these helpers skip what the daemon does not need: ``zmq.Poller``'s bookkeeping,
``recv_multipart``'s per-frame more-flag checks, and a failing receive at the end of
each drain.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import zmq
from zmq.backend import zmq_poll

from zdps.readiness import readable

DRAIN_LIMIT = 4096  # frames taken from one socket per wake-up before looking at the others
DRAIN_BUDGET = 0.05  # seconds spent on one socket per wake-up


class PollSet:
    """zmq.Poller's job at half its per-call cost: the item list is kept ready for zmq_poll."""

    def __init__(self) -> None:
        self._items: dict[Any, int] = {}
        self._list: list[tuple[Any, int]] = []

    def register(self, sock: Any, flags: int) -> None:
        self._items[sock] = flags
        self._list = list(self._items.items())

    def unregister(self, sock: Any) -> None:
        if self._items.pop(sock, None) is not None:
            self._list = list(self._items.items())

    def poll(self, timeout_ms: int) -> list[tuple[Any, int]]:
        return zmq_poll(self._list, timeout_ms)


def drain(sock: zmq.Socket, recv: Callable[[int], Any]) -> Iterator[Any]:
    """What ``sock`` has ready, up to DRAIN_LIMIT messages or DRAIN_BUDGET, without blocking.

    The poller said something is there, so the first receive cannot fail. After it the
    socket's EVENTS say whether more is waiting: with pyzmq 27 that costs a quarter of
    a receive that fails with Again, which ends a longer drain. The time budget keeps a
    flood of large client batches from holding up the other sockets, the failure
    detector's probes above all.
    """
    until = time.monotonic() + DRAIN_BUDGET
    try:
        yield recv(zmq.NOBLOCK)
    except zmq.Again:
        return
    if not readable(sock):
        return
    for _ in range(DRAIN_LIMIT - 1):
        if time.monotonic() > until:
            return
        try:
            yield recv(zmq.NOBLOCK)
        except zmq.Again:
            return


def routed(sock: zmq.Socket) -> Callable[[int], tuple[bytes, zmq.Frame | None]]:
    """A receiver of (identity, body) from a ROUTER; body None for a multi-frame message.

    The body is a ``zmq.Frame``: its ``bytes`` cost what a copying receive does, and it
    can still say which address sent it (for bad-input reports).

    A ROUTER message always has the identity and at least one frame, so only the body's
    more-flag is read: pyzmq's recv_multipart checks RCVMORE per frame and costs about
    twice as much.
    """
    recv = sock.recv

    def receive(flags: int) -> tuple[bytes, zmq.Frame | None]:
        identity = recv(flags)
        body = recv(0, copy=False)
        if not body.more:
            return identity, body
        while body.more:
            body = recv(0, copy=False)
        return identity, None

    return receive


def name_sender(errors: list[tuple[str, str]], start: int, frame: zmq.Frame) -> None:
    """Add the address the frame came from to the bad-input reports it caused."""
    try:
        address = frame.get("Peer-Address") or "a local socket"
    except zmq.ZMQError:  # inproc
        address = "a local socket"
    for index in range(start, len(errors)):
        code, message = errors[index]
        errors[index] = (code, f"{message} (connection from {address})")


def user_of(frame: zmq.Frame) -> str | None:
    """The name of the CURVE key (ZAP User-Id) of the connection ``frame`` came on; None
    without one (inproc has no metadata)."""
    try:
        return frame.get("User-Id")
    except zmq.ZMQError:
        return None
