"""Monitors never hang the context's IO thread (zdps/socket_monitor.py).

A DEALER dialling a port nobody listens on reports a retried connection every
100 ms from the IO thread; libzmq 4.3 sends each report with a blocking send, so a
reader closed before the monitor stops would block that thread, and every socket of
the context with it.
"""

from __future__ import annotations

import gc
import socket

import pytest
import zmq

from zdps import Client, ZdpsError
from zdps.socket_monitor import _READERS, unwatch, watch, watched_socket

pytestmark = pytest.mark.timeout(60)


def dead_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def io_thread_works(ctx: zmq.Context) -> bool:
    """A message crosses a fresh TCP pair of ``ctx`` (connects run in its IO thread)."""
    router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    try:
        port = router.bind_to_random_port("tcp://127.0.0.1")
        dealer.connect(f"tcp://127.0.0.1:{port}")
        dealer.send(b"x")
        return bool(router.poll(3000))
    finally:
        router.close(0)
        dealer.close(0)


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(0)


def retrying_dealer(ctx: zmq.Context, watched: bool) -> zmq.Socket:
    """A DEALER reporting a retried connection every 100 ms, with a message queued so
    that it lingers after its close."""
    sock = watched_socket(ctx, zmq.DEALER) if watched else ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 1000)
    sock.connect(dead_endpoint())
    sock.send(b"never delivered")
    return sock


def test_a_dropped_reader_stays_open_until_its_monitor_stops(ctx) -> None:
    sock = retrying_dealer(ctx, watched=False)
    reader = watch(sock, zmq.EVENT_CONNECT_RETRIED, "test")
    assert reader.poll(3000)
    del reader
    gc.collect()
    assert not zmq.Socket.closed.__get__(_READERS[sock.underlying])
    assert io_thread_works(ctx)  # reports kept coming meanwhile
    unwatch(sock)
    sock.close(0)
    assert io_thread_works(ctx)


def test_a_watched_socket_left_to_the_collector_stops_its_monitor_first(ctx) -> None:
    before = len(_READERS)
    for _ in range(5):
        sock = retrying_dealer(ctx, watched=True)
        watch(sock, zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_CLOSED, "test")
        cycle: list = [sock]
        cycle.append(cycle)  # only the cyclic collector frees it, in any order
        del sock, cycle
        gc.collect()
    assert len(_READERS) == before
    assert io_thread_works(ctx)


def test_clients_left_to_the_collector_leave_the_process_able_to_connect(ctx) -> None:
    """Plain-text clients of a CURVE server: every handshake fails and is reported."""
    server_ctx = zmq.Context()
    server = server_ctx.socket(zmq.ROUTER)
    try:
        server.curve_server = True
        server.curve_secretkey = zmq.curve_keypair()[1]
        endpoint = f"tcp://127.0.0.1:{server.bind_to_random_port('tcp://127.0.0.1')}"
        for _ in range(20):
            with pytest.raises(ZdpsError):
                Client(endpoint, timeout=0.05, context=ctx).status()
            gc.collect()
        assert io_thread_works(ctx)
    finally:
        server_ctx.destroy(0)
