"""Waiting on a ZeroMQ socket in a test: on the socket's own poll, with a deadline."""

from __future__ import annotations

import time

import zmq

from zdps.readiness import readable


def until_readable(sock: zmq.Socket, what: str = "nothing arrived", timeout: float = 10.0) -> None:
    """Return once a receive on ``sock`` would succeed; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not readable(sock):
        assert time.monotonic() < deadline, what
        sock.poll(10)
