"""``readable``: whether a message waits on a socket, without receiving it."""

from __future__ import annotations

import pytest
import zmq

from tests.sockets import until_readable
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
        until_readable(pull, "the message never showed")
        assert readable(pull)  # asking again takes nothing
        assert pull.recv() == b"one"
        assert not readable(pull)
    finally:
        ctx.destroy(linger=0)
