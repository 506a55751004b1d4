"""The IO layer of a node: sockets, the clock, signals; all decisions are NodeCore's.

One thread, one poller. Each wake-up drains every ready socket (up to a bound, so no
socket starves the others), feeds the frames to the core, runs due timers, then
flushes the core's outbox: one frame per peer, replies per client, deliveries to the
XPUB. Sends never block the loop: a peer whose queue is full keeps a backlog that is
retried when its socket becomes writable.

Each peer gets two DEALERs to its cluster ROUTER: the data link, and the probe channel
for the failure detector. The peer's ROUTER fair-queues between the two connections,
so a probe is read after at most one frame of each other link, not behind a data
backlog; its answer is sent as soon as the frame is handled, not at the end of the turn.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import zmq
from zmq.backend import Socket as _BackendSocket
from zmq.backend import zmq_poll

from zdps import __version__
from zdps.core.node import NodeCore
from zdps.core.outbox import envelopes
from zdps.daemon.config import Config, core_config
from zdps.daemon.logs import RateLimitedLog, setup
from zdps.endpoints import connectable, host
from zdps.wire import E_MALFORMED, encode_api
from zdps.wire.codec import NodeMessage

DRAIN_LIMIT = 4096  # frames taken from one socket per wake-up before looking at the others
DRAIN_BUDGET = 0.05  # seconds spent on one socket per wake-up
MAX_FRAME = 256 * 1024 * 1024  # larger incoming frames are refused by libzmq
PEER_HWM = 10_000  # envelopes queued per peer before the backlog takes over
PROBE_HWM = 1000  # probe-channel envelopes queued per peer; beyond that they are dropped
API_HWM = 100_000  # replies queued per client; a client that stops reading loses the rest
SHUTDOWN_LINGER_MS = 1000
_get = _BackendSocket.get  # getsockopt without pyzmq's enum conversion (half the cost)


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


class Node:
    """A running zdps daemon."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.log = setup(config.node_id, config.log_level)
        self.bad_input_log = RateLimitedLog(self.log)
        self.ctx = zmq.Context()
        self.incarnation = time.time_ns()
        self._dealers: dict[str, zmq.Socket] = {}
        self._probers: dict[str, zmq.Socket] = {}  # the probe channel, per peer endpoint
        self._backlog: dict[str, deque[bytes]] = {}
        self._stopping = False
        self._api_paused = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

        self.cluster = self._bind(zmq.ROUTER, config.cluster, maxmsgsize=MAX_FRAME)
        self.api = self._bind(
            zmq.ROUTER, config.api, maxmsgsize=MAX_FRAME, router_mandatory=1, sndhwm=API_HWM
        )
        self.pub = self._bind(zmq.XPUB, config.pub, xpub_verboser=1, sndhwm=config.pub_hwm)
        cluster_host = host(config.advertised) or "127.0.0.1"
        self.core = NodeCore(
            config.node_id,
            self.incarnation,
            config.scope,
            config.advertised,
            config.seeds,
            time.monotonic(),
            core_config(config),
            info={
                "version": __version__,
                "pid": os.getpid(),
                "endpoints": {
                    "cluster": self._bound(self.cluster),
                    "advertise": config.advertised,
                    "api": connectable(self._bound(self.api), cluster_host),
                    "pub": connectable(self._bound(self.pub), cluster_host),
                },
            },
        )
        self.poller = PollSet()
        for sock in (self.cluster, self.api, self.pub):
            self.poller.register(sock, zmq.POLLIN)
        self.poller.register(self._wake_r.fileno(), zmq.POLLIN)

    # ------------------------------------------------------------------ setup

    def _bind(self, kind: int, endpoint: str, **options: int) -> zmq.Socket:
        sock = self.ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        for name, value in options.items():
            sock.setsockopt(getattr(zmq, name.upper()), value)
        sock.bind(endpoint)
        return sock

    @staticmethod
    def _bound(sock: zmq.Socket) -> str:
        return sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def _dealer(self, endpoint: str, probe: bool = False) -> zmq.Socket | None:
        """The data link (or probe channel) to ``endpoint``; None if it cannot be dialed."""
        sockets = self._probers if probe else self._dealers
        sock = sockets.get(endpoint)
        if sock is None:
            sock = self.ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, PROBE_HWM if probe else PEER_HWM)
            try:
                sock.connect(endpoint)
            except zmq.ZMQError as exc:  # the core checks endpoints; this is the last guard
                sock.close(0)
                self.core.bad_input(E_MALFORMED, f"cannot dial {endpoint!r}: {exc}")
                return None
            sockets[endpoint] = sock
        return sock

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._stopping = True

    # ------------------------------------------------------------------ the loop

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT; then tell the peers we leave and return 0."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        old_fd = signal.set_wakeup_fd(self._wake_w.fileno())
        core = self.core
        endpoints = core.info["endpoints"]
        self.log.info(
            "node %s ready: scope=%s cluster=%s advertise=%s api=%s pub=%s seeds=%s",
            core.node,
            core.scope,
            endpoints["cluster"],
            endpoints["advertise"],
            endpoints["api"],
            endpoints["pub"],
            ",".join(self.config.seeds) or "-",
        )
        try:
            core.start(time.monotonic())
            self._flush()
            while not self._stopping:
                self._turn()
            self.log.info("node %s leaving", core.node)
            core.leave(time.monotonic())
            self._flush()
            self._linger()
        except Exception:
            self.log.exception("node %s stopped by an internal error", core.node)
            self.ctx.destroy(linger=0)
            return 1
        else:
            self.close()
        finally:
            signal.set_wakeup_fd(old_fd)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return 0

    def _linger(self) -> None:
        """Hand every backlog to ZeroMQ and let the last frames (bye, acks) go out."""
        for endpoint, backlog in self._backlog.items():
            sock = self._dealers[endpoint]
            while backlog:
                try:
                    sock.send(backlog.popleft(), zmq.NOBLOCK)
                except zmq.Again:
                    break
        for sock in (*self._dealers.values(), self.api, self.pub):
            sock.setsockopt(zmq.LINGER, SHUTDOWN_LINGER_MS)

    def _turn(self) -> None:
        core = self.core
        now = time.monotonic()
        deadline = core.next_deadline(now)
        ready = dict(self.poller.poll(math.ceil(max(0.0, deadline - now) * 1000)))
        now = time.monotonic()
        if self.cluster in ready:
            self._drain_cluster(now)
        if self.api in ready:
            self._drain_api(now)
        if self.pub in ready:
            self._drain_pub(now)
        if self._wake_r.fileno() in ready:
            with contextlib.suppress(BlockingIOError):
                self._wake_r.recv(4096)
        if self._backlog:
            for endpoint in list(self._backlog):
                if ready.get(self._dealers[endpoint], 0) & zmq.POLLOUT:
                    self._retry_backlog(endpoint)
        if now >= deadline:
            core.tick(now)
        self._flush()
        if core.paused != self._api_paused:
            # Saturated: leave client publishes queued in ZeroMQ (backpressure) until
            # the peers confirm what we sent them.
            self._api_paused = core.paused
            if self._api_paused:
                self.poller.unregister(self.api)
            else:
                self.poller.register(self.api, zmq.POLLIN)

    @staticmethod
    def _drain(sock: zmq.Socket, recv: Callable[[int], Any]) -> Iterator[Any]:
        """What ``sock`` has ready, up to DRAIN_LIMIT messages or DRAIN_BUDGET, without blocking.

        The poller said something is there, so the first receive cannot fail. After it
        the socket's EVENTS say whether more is waiting: with pyzmq 27 that costs a
        quarter of a receive that fails with Again, which ends a longer drain. The time
        budget keeps a flood of large client batches from holding up the other sockets,
        the failure detector's probes above all.
        """
        until = time.monotonic() + DRAIN_BUDGET
        try:
            yield recv(zmq.NOBLOCK)
        except zmq.Again:
            return
        if not _get(sock, zmq.EVENTS) & zmq.POLLIN:
            return
        for _ in range(DRAIN_LIMIT - 1):
            if time.monotonic() > until:
                return
            try:
                yield recv(zmq.NOBLOCK)
            except zmq.Again:
                return

    def _drain_cluster(self, now: float) -> None:
        core = self.core
        for identity_and_body in self._drain(self.cluster, self._routed(self.cluster)):
            body = identity_and_body[1]
            if body is None:
                core.bad_input(E_MALFORMED, "cluster message of more than one frame")
            else:
                core.on_cluster_frame(body, now)
                if core.outbox.probes:  # answer probes now, not after the whole drain
                    self._send_probes(core.outbox.take_probes())

    def _drain_api(self, now: float) -> None:
        core = self.core
        for client, body in self._drain(self.api, self._routed(self.api)):
            if body is None:
                core.bad_client_frame(client, "an API message is one frame")
            else:
                core.on_client_frame(client, body, now)
                if core.paused:
                    return  # saturated: the rest stays queued in ZeroMQ (flow control)

    @staticmethod
    def _routed(sock: zmq.Socket) -> Callable[[int], tuple[bytes, bytes | None]]:
        """A receiver of (identity, body) from a ROUTER; body None for a multi-frame message.

        A ROUTER message always has the identity and at least one frame, so only the
        body's more-flag is read: pyzmq's recv_multipart checks RCVMORE per frame and
        costs about twice as much.
        """
        recv = sock.recv

        def receive(flags: int) -> tuple[bytes, bytes | None]:
            identity = recv(flags)
            body = recv(0, copy=False)
            if not body.more:
                return identity, body.bytes
            while body.more:
                body = recv(0, copy=False)
            return identity, None

        return receive

    def _drain_pub(self, now: float) -> None:
        core = self.core
        for message in self._drain(self.pub, self.pub.recv):
            if message[:1] in (b"\x00", b"\x01"):
                core.on_subscription(message[1:], message[0] == 1, now)
            else:
                core.bad_input(E_MALFORMED, "a subscriber sent something other than a subscription")

    # ------------------------------------------------------------------ output

    def _flush(self) -> None:
        out = self.core.take()
        if not out:
            return
        for endpoint in out.disconnects:
            sock = self._dealers.pop(endpoint, None)
            self._backlog.pop(endpoint, None)
            if sock is not None:
                self.poller.unregister(sock)
                sock.close(0)
            prober = self._probers.pop(endpoint, None)
            if prober is not None:
                prober.close(0)
        if out.probes:
            self._send_probes(out.probes)
        if out.peers:
            core = self.core
            header = (core.scope, core.node, core.incarnation)
            for endpoint, messages in out.peers.items():
                for frame in envelopes(header, messages):
                    self._send_peer(endpoint, frame)
        if out.deliveries:
            send = self.pub.send
            for topic, header_frame, payload in out.deliveries:
                send(topic.encode() + b"\x00", zmq.SNDMORE)
                send(header_frame, zmq.SNDMORE)
                send(payload)
        for client, frames in out.clients.items():
            for frame in frames:
                try:
                    self.api.send_multipart([client, encode_api(*frame)], zmq.NOBLOCK)
                except zmq.Again:
                    self.core.bad_input("client_backlog", f"{API_HWM} replies unread; dropped")
                except zmq.ZMQError:  # EHOSTUNREACH: the client is gone
                    self.core.client_gone(client)
                    break
        now = time.monotonic()
        for code, message in out.errors:
            self.bad_input_log.report(code, message, now)
        for line in out.log:
            self.log.info("%s", line)

    def _send_peer(self, endpoint: str, frame: bytes) -> None:
        backlog = self._backlog.get(endpoint)
        if backlog:
            backlog.append(frame)
            return
        sock = self._dealer(endpoint)
        if sock is None:
            return
        try:
            sock.send(frame, zmq.NOBLOCK)
        except zmq.Again:
            self._backlog[endpoint] = deque([frame])
            self.poller.register(sock, zmq.POLLOUT)

    def _send_probes(self, probes: dict[str, list[NodeMessage]]) -> None:
        """Probe-link envelopes: sent now or dropped (a late probe is worthless)."""
        core = self.core
        header = (core.scope, core.node, core.incarnation)
        for endpoint, messages in probes.items():
            sock = self._dealer(endpoint, probe=True)
            if sock is not None:
                for frame in envelopes(header, messages):
                    with contextlib.suppress(zmq.Again):
                        sock.send(frame, zmq.NOBLOCK)

    def _retry_backlog(self, endpoint: str) -> None:
        backlog = self._backlog.get(endpoint)
        sock = self._dealers[endpoint]
        while backlog:
            try:
                sock.send(backlog[0], zmq.NOBLOCK)
            except zmq.Again:
                return
            backlog.popleft()
        self._backlog.pop(endpoint, None)
        self.poller.unregister(sock)

    def close(self) -> None:
        """Close every socket; each keeps the LINGER it has (1 s after a graceful leave)."""
        for sock in (
            self.cluster,
            self.api,
            self.pub,
            *self._dealers.values(),
            *self._probers.values(),
        ):
            sock.close()
        self.ctx.term()
        self._wake_r.close()
        self._wake_w.close()
