"""Sockets bound with a monitor: options applied, and no connection unseen."""

from __future__ import annotations

import time

import pytest
import zmq

from zdps.daemon.monitors import CONNECTIONS, SocketEvent, SocketMonitor, bind_monitored, parse

pytestmark = pytest.mark.timeout(30)


def test_a_bound_socket_has_its_options_and_its_monitor_sees_the_first_connection() -> None:
    ctx = zmq.Context()
    monitors: dict[str, SocketMonitor] = {}
    try:
        sock = bind_monitored(ctx, monitors, "api", zmq.ROUTER, "tcp://127.0.0.1:*", CONNECTIONS,
                              sndhwm=7, rcvhwm=9)  # fmt: skip
        assert (sock.getsockopt(zmq.LINGER), sock.sndhwm, sock.rcvhwm) == (0, 7, 9)
        monitor = monitors["api"]
        seen: list[SocketEvent] = []
        monitor.listeners.append(lambda event, _now: seen.append(event))
        client = ctx.socket(zmq.DEALER)
        client.setsockopt(zmq.LINGER, 0)
        client.connect(sock.getsockopt_string(zmq.LAST_ENDPOINT))
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            monitor.socket.poll(100)
            monitor.pump(time.monotonic())
        assert [event.kind for event in seen] == [zmq.EVENT_ACCEPTED]
        client.close()
        monitor.close()
        sock.close()
    finally:
        ctx.destroy(linger=0)


def test_without_events_a_socket_gets_no_monitor() -> None:
    ctx = zmq.Context()
    monitors: dict[str, SocketMonitor] = {}
    try:
        bind_monitored(ctx, monitors, "cluster", zmq.ROUTER, "tcp://127.0.0.1:*", 0).close()
        assert monitors == {}
    finally:
        ctx.destroy(linger=0)


def test_a_short_monitor_message_parses_as_event_zero() -> None:
    assert parse([b"\x01"]) == SocketEvent(0, 0, "?")
