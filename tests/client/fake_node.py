"""A stand-in for a node's API socket: a ROUTER on a free loopback port, in a thread.

Tests script its answers with ``handler`` (called in the node's thread for every
frame a client sends) and ``call``/``later`` (run code in that thread), so that a
test can hold acks back, reorder them, or send frames a real node never would.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import zmq

from zdps.wire import LEVEL_OWNER, LEVEL_REPLICATED, PROTOCOL_VERSION, encode_api, pack, unpack
from zdps.wire.batches import unpack_batch


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (nothing listens on it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)
    return result


Handler = Callable[["FakeNode", bytes, list], None]


class Published(NamedTuple):
    """One entry of a ``pub`` frame, decoded: a batch of messages to one topic."""

    ref: int  # of its first message, the others' follow (0: no acks)
    topic: str
    payloads: list[bytes]
    level: int
    lazy: bool = False  # the client does not wait on its ack alone (a window)


def pub_entries(msg: list) -> list[Published]:
    """The entries ``[ref, topic, n, batch, level?, lazy?]`` of a ``pub`` frame, decoded:
    the level travels only when it is not the default, or before ``lazy`` (only true,
    and only with acks wanted)."""
    found = []
    for entry in msg[2]:
        assert 4 <= len(entry) <= 6, entry
        ref, topic, n, batch, *more = entry
        if len(more) == 2:
            assert more[1] is True and ref and more[0] in (LEVEL_OWNER, LEVEL_REPLICATED), entry
        else:
            assert more in ([], [LEVEL_REPLICATED]), entry
        payloads = unpack_batch(batch, n)
        level = more[0] if more else LEVEL_OWNER
        found.append(Published(ref, topic, payloads, level, len(more) == 2))
    return found


def pub_messages(msg: list) -> list[tuple[int, str, bytes]]:
    """``(ref, topic, payload)`` of each message of a ``pub`` frame, in order."""
    return [
        (entry.ref + i if entry.ref else 0, entry.topic, payload)
        for entry in pub_entries(msg)
        for i, payload in enumerate(entry.payloads)
    ]


class FakeNode:
    def __init__(self, handler: Handler | None = None) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.pub = f"tcp://127.0.0.1:{free_port()}"
        self.handler = handler or answer
        self.received: list[list] = []  # every frame from clients, decoded
        self.seq = itertools.count(1)
        self._calls: queue.Queue = queue.Queue()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    # -- used from the node's thread (in handlers and calls)

    def send(self, client: bytes, *fields: Any) -> None:
        self.sock.send_multipart([client, encode_api(*fields)])

    def send_raw(self, client: bytes, frame: bytes) -> None:
        self.sock.send_multipart([client, frame])

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._order), fn))

    # -- used from the test's thread

    def call(self, fn: Callable[[], None]) -> None:
        self._calls.put(fn)

    def requests(self, op: str) -> list[list]:
        return [f for f in list(self.received) if f[1] == "req" and f[3] == op]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
        self.ctx.term()

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = 10
            if self._timers:
                wait = max(0, min(wait, int((self._timers[0][0] - time.monotonic()) * 1000)))
            if self.sock.poll(wait):
                while True:
                    try:
                        client, frame = self.sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    msg = unpack(frame)
                    self.received.append(msg)
                    self.handler(self, client, msg)
            while not self._calls.empty():
                self._calls.get()()
            while self._timers and self._timers[0][0] <= time.monotonic():
                heapq.heappop(self._timers)[2]()


def answer(node: FakeNode, client: bytes, msg: list) -> None:
    """What a healthy single node answers (enough for the client's operations): a
    batch's acks as one run, its messages' seqs consecutive."""
    if msg[1] == "pub":
        for entry in pub_entries(msg):
            n = len(entry.payloads)
            seq = next(node.seq)
            node.seq = itertools.count(seq + n)
            if entry.ref:
                node.send(client, "ack", [[entry.ref, seq, 1, 0, n]])
        return
    _, _, ref, op, args = msg
    if op == "info":
        result: Any = {"version": "x", "pid": 1, "endpoints": {"pub": node.pub}}
    elif op in ("members", "watch"):
        result = {"topic": args.get("topic"), "owner": "fake", "nodes": {}, "queues": {}}
    elif op in ("ready", "unwatch"):
        result = True
    else:
        result = {"op": op, "args": args}
    node.send(client, "rep", ref, True, result)


def garbage() -> list[bytes]:
    """Frames a client must skip: not msgpack, and a reply of the wrong shape."""
    return [b"\xc1", pack([PROTOCOL_VERSION, "rep", 5])]


def on_publish(handle: Handler) -> Handler:
    """A handler for ``pub`` frames; requests get the healthy answer."""

    def handler(node: FakeNode, client: bytes, msg: list) -> None:
        if msg[1] == "pub":
            handle(node, client, msg)
        else:
            answer(node, client, msg)

    return handler
