"""``readable``: whether a message waits on a socket, without receiving it."""

from __future__ import annotations

import time

import pytest
import zmq

from zdps.readiness import readable

pytestmark = pytest.mark.timeout(30)


def test_a_socket_is_readable_while_a_message_waits_and_only_then() -> None:
    ctx = zmq.Context()
    try:
        pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
        pull.bind("inproc://readiness")
        push.connect("inproc://readiness")
        assert not readable(pull)
        push.send(b"one")
        deadline = time.monotonic() + 10
        while not readable(pull):
            assert time.monotonic() < deadline, "the message never showed"
            pull.poll(10)
        assert readable(pull)  # asking again takes nothing
        assert pull.recv() == b"one"
        assert not readable(pull)
    finally:
        ctx.destroy(linger=0)
