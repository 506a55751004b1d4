"""The daemon's loop in this process: a bug in the cores ends it with status 1.

Only ``ProtocolError`` is bad input (counted, and the node carries on); any other
exception out of the cores is a bug. The daemon logs it as ``internal_error``, destroys
its sockets without a ``bye`` and returns 1, so systemd restarts it and the operator
sees why (docs/PROTOCOL.md §2, Shutdown).
"""

from __future__ import annotations

import io
import logging
import socket

import pytest
import zmq

from tests.sockets import until_readable
from zdps.daemon.config import Config
from zdps.daemon.loop import Daemon

pytestmark = pytest.mark.timeout(30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def daemon() -> Daemon:
    endpoints = [f"tcp://127.0.0.1:{free_port()}" for _ in range(4)]
    config = Config(
        node_id="bug",
        cluster=endpoints[0],
        api=endpoints[1],
        pub=endpoints[2],
        batch_pub=endpoints[3],
    ).check()
    return Daemon(config)


def test_an_exception_out_of_the_cores_ends_the_daemon_with_status_1(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = daemon()
    written = io.StringIO()
    logging.getLogger("zdps").handlers[:] = [logging.StreamHandler(written)]

    def broken(now: float) -> None:
        raise RuntimeError("a bug in a timer")

    monkeypatch.setattr(node.core, "tick", broken)
    assert node.run() == 1
    assert "internal_error" in written.getvalue()
    assert "RuntimeError: a bug in a timer" in written.getvalue()
    assert node.ctx.closed  # every socket destroyed, nothing left behind


def test_a_protocol_error_is_bad_input_not_an_end(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same path with bad input instead: counted, and the loop goes on."""
    node = daemon()
    ticks = []

    def tick(now: float) -> None:
        ticks.append(now)
        node.core.on_cluster_frame(b"\xc1 not msgpack", now)  # raises nothing
        if len(ticks) == 3:
            node.signals.stop = True  # as a second SIGTERM does

    monkeypatch.setattr(node.core, "tick", tick)
    assert node.run() == 0
    assert node.core.errors == {"malformed": 3}


def test_a_turn_that_drained_frames_and_whose_timers_are_due_flushes_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The timers run after the drains (a timeout sees what came in) and before their
    flush, so one flush carries out both."""
    node = daemon()
    peer = node.ctx.socket(zmq.DEALER)
    try:
        peer.connect(node.config.cluster)
        peer.send(b"\xc1 not msgpack")  # bad input: counted, and enough to drain
        until_readable(node.cluster, "the frame never reached the cluster socket")
        calls: list[str] = []
        monkeypatch.setattr(node.core, "next_deadline", lambda: 0.0)  # the timers are due
        monkeypatch.setattr(node.core, "tick", lambda now: calls.append("tick"))
        monkeypatch.setattr(node, "_flush", lambda: calls.append("flush"))
        node._turn()
        assert node.core.errors == {"malformed": 1}
        assert calls == ["tick", "flush"]
    finally:
        peer.close(linger=0)
        node.close()
