"""The IO layer of a node: sockets, the clock, signals; all decisions are NodeCore's.

One thread, one poller. Each wake-up drains every ready socket (up to a bound, so no
socket starves the others), feeds the frames to the core, runs due timers, and
carries out the core's outbox: envelopes per peer (``links.py``), replies per client,
deliveries to the XPUB. Sends never block the loop. Probe-link messages a frame
produced are sent as soon as that frame is handled.

The outbox is carried out after each socket's drain, and within a drain once FLUSH_AFTER
of work has gone by, not once per wake-up: what a turn read must not wait for the rest
of the turn, least of all when the process is descheduled in the middle of it (the
latency tail). Batching does not suffer: a busy node's frames already carry whole
batches.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

import zmq

from zdps import __version__
from zdps.core.log_events import log_event
from zdps.core.node import NodeCore
from zdps.core.outbox import envelopes
from zdps.daemon.config import Config, core_config
from zdps.daemon.delivery import EXPANSION, deliver
from zdps.daemon.links import SHUTDOWN_LINGER_MS, PeerLinks
from zdps.daemon.logs import DebugLog, EventLog, setup
from zdps.daemon.polling import PollSet, drain, routed
from zdps.daemon.security import CurveSecurity
from zdps.daemon.subscribers import SubscriberFilter
from zdps.endpoints import connectable, host
from zdps.keys import CurveClient
from zdps.memory import keep_freed_memory
from zdps.wire import E_MALFORMED, encode_api
from zdps.wire.codec import NodeMessage
from zdps.wire.errors import E_NO_PEER_KEY, E_UNAUTHENTICATED

MAX_FRAME = 256 * 1024 * 1024  # larger incoming frames are refused by libzmq
API_HWM = 100_000  # replies queued per client; a client that stops reading loses the rest
E_CLIENT_BACKLOG = "client_backlog"  # counts replies dropped for a client that stopped reading
SLOW_SUBSCRIBER_LOG = 5.0  # seconds between two log lines of subscriber_queue_full
# The data path allocates and frees millions of short-lived objects and creates almost
# no cycles: collect the young generation every 50,000 allocations, not 700 (bench/ab:
# node CPU -3 to -5 %), and never scan what start-up made (gc.freeze).
GC_THRESHOLDS = (50_000, 20, 100)
FLUSH_AFTER = 0.001  # seconds of draining after which the outbox is carried out


class Daemon:
    """A running zdps daemon."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.log = setup(config.node_id, config.log_level)
        self.events = EventLog(self.log)
        self.ctx = zmq.Context()
        self.incarnation = time.time_ns()
        self._stopping = False
        self._api_paused = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._reload = False  # SIGHUP: read the CURVE allow-list again

        self.security = None
        cluster_options: dict[str, Any] = {"maxmsgsize": MAX_FRAME}
        client_options: dict[str, Any] = {}  # the API's and PUBs': CURVE with curve_clients
        if config.curve:
            self.security = CurveSecurity(
                self.ctx, config.keys(), config.seed_nodes, self._node_at, config.client_keys()
            )
            cluster_options.update(self.security.server_options())
            client_options = self.security.client_options()
        self.cluster = self._bind(zmq.ROUTER, config.cluster, **cluster_options)
        self.api = self._bind(
            zmq.ROUTER, config.api, maxmsgsize=MAX_FRAME, router_mandatory=1, sndhwm=API_HWM,
            **client_options,
        )  # fmt: skip
        # XPUB_NODROP: a subscriber pub_hwm behind is noticed (expansion.py), not ignored.
        pub_options = {"xpub_verboser": 1, "xpub_nodrop": 1, "sndhwm": config.pub_hwm}
        pub_options |= client_options
        self.pub = self._bind(zmq.XPUB, config.pub, **pub_options)
        self.batch_pub = self._bind(zmq.XPUB, config.batches, **pub_options)
        self.raw_subscribers = SubscriberFilter()  # what the raw PUB's SUBs subscribed to
        cluster_host = host(config.advertised) or "127.0.0.1"
        self.core = NodeCore(
            config.node_id,
            self.incarnation,
            config.scope,
            config.advertised,
            config.seed_endpoints,
            time.monotonic(),
            core_config(config),
            info={
                "version": __version__,
                "pid": os.getpid(),
                "expansion": EXPANSION,  # the raw PUB's loop: compiled or python
                "cluster_security": "curve" if config.curve else "none",
                "client_security": "curve" if config.curve_clients else "none",
                "endpoints": {
                    "cluster": self._bound(self.cluster),
                    "advertise": config.advertised,
                    "api": connectable(self._bound(self.api), cluster_host),
                    "pub": connectable(self._bound(self.pub), cluster_host),
                    "batch_pub": connectable(self._bound(self.batch_pub), cluster_host),
                },
            },
        )
        self.poller = PollSet()
        for sock in (self.cluster, self.api, self.pub, self.batch_pub):
            self.poller.register(sock, zmq.POLLIN)
        self.poller.register(self._wake_r.fileno(), zmq.POLLIN)
        curve = None
        if self.security is not None:
            self.poller.register(self.security.zap.socket, zmq.POLLIN)
            watched = (self.cluster, self.api, self.pub, self.batch_pub)
            for sock in watched if client_options else (self.cluster,):
                self.poller.register(self.security.watch(sock), zmq.POLLIN)
            curve = self._curve_client
        seeds = config.seed_endpoints
        self.links = PeerLinks(self.ctx, self.poller, self._cannot_dial, seeds, curve)
        sockets = {"api": self.api, "pub": self.pub, "batch_pub": self.batch_pub}
        self.debug = DebugLog.make(self.log, self.poller, sockets, dataclasses.asdict(config))
        self._header = (self.core.scope, self.core.node, self.core.incarnation)

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

    def _cannot_dial(self, endpoint: str, why: str) -> None:
        self.core.bad_input(E_MALFORMED, f"cannot dial {endpoint!r}: {why}")

    def _node_at(self, endpoint: str) -> str | None:
        return self.core.membership.node_at(endpoint)

    def _curve_client(self, endpoint: str) -> CurveClient | None:
        assert self.security is not None
        keys, why = self.security.client(endpoint)
        if keys is None:
            self.core.bad_input(E_NO_PEER_KEY, f"not dialling {endpoint!r}: {why}")
        return keys

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if signum == signal.SIGHUP:
            self._reload = True
        else:
            self._stopping = True

    def _serve_zap(self, ready: dict) -> None:
        """Answer ZAP; each refused connection is counted and logged."""
        assert self.security is not None
        refused = self.security.refusals(ready)
        now = time.monotonic() if refused else 0.0
        for why, where in refused:
            self.core.count_error(E_UNAUTHENTICATED)
            self.events.refused(why, f"refused a connection {where}", now)

    # ------------------------------------------------------------------ the loop

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT; then tell the peers we leave and return 0 (1 if
        the core refused to go on: another node has this node's id).

        An exception that escapes the core is a bug: it is logged, every socket is
        destroyed without linger (no bye), and the daemon exits 1.
        """
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        previous = {s: signal.signal(s, self._on_signal) for s in handled}
        old_fd = signal.set_wakeup_fd(self._wake_w.fileno())
        core = self.core
        info = core.info
        seeds = ",".join(self.config.seed_endpoints) or "-"
        ready = log_event(
            "ready", **info["endpoints"], scope=core.scope, seeds=seeds,
            security=info["cluster_security"], clients=info["client_security"],
        )  # fmt: skip
        self.events.write(ready, 0.0)
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        keep_freed_memory()
        try:
            core.start(time.monotonic())
            self._flush()
            while not self._stopping and core.refusal is None:
                self._turn()
            if core.refusal is not None:
                self.events.write(log_event("refused_to_run", "error", why=core.refusal), 0.0)
            self.events.write(log_event("leaving", pending_acks=core.pending), 0.0)
            core.leave(time.monotonic())
            self._flush()
            self.links.linger()
            for sock in (self.api, self.pub, self.batch_pub):
                sock.setsockopt(zmq.LINGER, SHUTDOWN_LINGER_MS)
        except Exception:
            self.log.exception("%s", log_event("internal_error", "error"))
            self.ctx.destroy(linger=0)
            return 1
        else:
            self.close()
        finally:
            signal.set_wakeup_fd(old_fd)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return 0 if core.refusal is None else 1

    def _turn(self) -> None:
        core = self.core
        now = time.monotonic()
        deadline = core.next_deadline()
        ready = dict(self.poller.poll(math.ceil(max(0.0, deadline - now) * 1000)))
        now = time.monotonic()
        if self.security is not None:
            self._serve_zap(ready)
        if self.cluster in ready:
            self._drain_routed(self.cluster, self._cluster_message, now)
            self._flush()
        if self.api in ready:
            self._drain_routed(self.api, self._client_message, now)
            self._flush()
        if self.pub in ready:
            self._drain_pub(self.pub, now, self.raw_subscribers)
        if self.batch_pub in ready:
            self._drain_pub(self.batch_pub, now)
        if self._wake_r.fileno() in ready:
            with contextlib.suppress(BlockingIOError):
                self._wake_r.recv(4096)
        if self._reload:
            self._reload = False
            if self.security is None:
                self.events.write(log_event("reload_ignored", why="no curve_peers to read"), now)
            else:
                self.events.write(self.security.reload(), now)
        self.links.retry(ready)
        for endpoint, answer in self.links.connection_news(ready):
            core.seed_connection(endpoint, answer)
        if now >= deadline:
            core.tick(now)
        self._flush()
        if self.debug is not None:
            self.debug.turn(ready, lambda: core.status(now), now)
        if core.paused != self._api_paused:
            # Saturated: leave client publishes queued in ZeroMQ (backpressure) until
            # the peers confirm what we sent them.
            self._api_paused = core.paused
            if self._api_paused:
                self.poller.unregister(self.api)
            else:
                self.poller.register(self.api, zmq.POLLIN)

    def _drain_routed(
        self, sock: zmq.Socket, handle: Callable[[bytes, Any, float], bool], now: float
    ) -> None:
        """The messages waiting on a ROUTER (cluster or API), each to ``handle`` with its
        identity, its frame (None for a message of more than one) and the time; it
        returns False to stop the drain. Bad input it causes names the address it came
        from. The outbox is carried out every FLUSH_AFTER."""
        core = self.core
        flush_at = now + FLUSH_AFTER
        for identity, frame in drain(sock, routed(sock)):
            errors = core.outbox.errors
            reported = len(errors)
            go_on = handle(identity, frame, now)
            if frame is not None and len(errors) > reported:
                _from_address(errors, reported, frame)
            if not go_on:
                return
            if (clock := time.monotonic()) >= flush_at:
                self._flush()
                now, flush_at = clock, clock + FLUSH_AFTER

    def _cluster_message(self, _identity: bytes, frame: Any, now: float) -> bool:
        core = self.core
        if frame is None:
            core.bad_input(E_MALFORMED, "cluster message of more than one frame")
            return True
        peer = None if self.security is None else self.security.peer_of(frame)
        core.on_cluster_frame(frame.bytes, now, peer)
        if core.outbox.probes:  # answer probes now, not after the whole drain
            self._send_probes(core.outbox.take_probes())
        return True

    def _client_message(self, client: bytes, frame: Any, now: float) -> bool:
        core = self.core
        if frame is None:
            core.bad_client_frame(client, "an API message is one frame")
            return True
        core.on_client_frame(client, frame.bytes, now)
        return not core.paused  # saturated: the rest stays queued in ZeroMQ (flow control)

    def _drain_pub(
        self, pub: zmq.Socket, now: float, subscribers: SubscriberFilter | None = None
    ) -> None:
        """Subscriptions of either PUB: to the core (cluster-wide interest), and for the
        raw one to its filter copy too."""
        core = self.core
        for message in drain(pub, pub.recv):
            if message[:1] in (b"\x00", b"\x01"):
                core.on_subscription(message[1:], message[0] == 1, now)
                if subscribers is not None:
                    subscribers.update(message[1:], message[0] == 1)
            else:
                core.bad_input(E_MALFORMED, "a subscriber sent something other than a subscription")

    # ------------------------------------------------------------------ output

    def _flush(self) -> None:
        out = self.core.take(time.monotonic())
        if not out:
            return
        for endpoint in out.disconnects:
            self.links.disconnect(endpoint)
        if out.probes:
            self._send_probes(out.probes)
        for endpoint, messages in out.peers.items():
            for frame in envelopes(self._header, messages):
                self.links.send(endpoint, frame)
        if out.deliveries:
            lost = deliver(
                self.pub,
                self.batch_pub,
                out.deliveries,
                self.raw_subscribers.wants,
                self.core.bad_input,
            )
            if lost:
                self._subscriber_queue_full(lost)
        for client, frames in out.clients.items():
            for frame in frames:
                try:
                    self.api.send_multipart([client, encode_api(*frame)], zmq.NOBLOCK)
                except zmq.Again:
                    self.core.bad_input(E_CLIENT_BACKLOG, f"{API_HWM} replies unread; dropped")
                except zmq.ZMQError:  # EHOSTUNREACH: the client is gone
                    self.core.client_gone(client)
                    break
        now = time.monotonic()
        for code, message in out.errors:
            self.events.bad_input(code, message, now)
        for event in out.log:
            self.events.write(event, now)

    def _subscriber_queue_full(self, lost: dict[str, int]) -> None:
        """Messages local subscribers lost (per topic): counted, and the operator is told
        (at most every SLOW_SUBSCRIBER_LOG seconds) which topic lost most."""
        total = self.core.subscribers_lost(lost)
        worst = max(lost, key=lost.__getitem__)
        event = log_event(
            "subscriber_queue_full", "warning", SLOW_SUBSCRIBER_LOG,
            messages=total, pub_hwm=self.config.pub_hwm, topic=worst,
        )  # fmt: skip
        self.events.write(event, time.monotonic())

    def _send_probes(self, probes: dict[str, list[NodeMessage]]) -> None:
        for endpoint, messages in probes.items():
            for frame in envelopes(self._header, messages):
                self.links.send_probe(endpoint, frame)

    def close(self) -> None:
        """Close every socket; each keeps the LINGER it has (1 s after a graceful leave)."""
        if self.debug is not None:
            self.debug.close()
        for sock in (self.cluster, self.api, self.pub, self.batch_pub):
            sock.close()
        self.links.close()
        if self.security is not None:
            self.security.close()
        self.ctx.term()
        self._wake_r.close()
        self._wake_w.close()


def _from_address(errors: list[tuple[str, str]], start: int, frame: zmq.Frame) -> None:
    """Add the address the frame came from to the bad-input reports it caused."""
    try:
        address = frame.get("Peer-Address") or "a local socket"
    except zmq.ZMQError:  # inproc
        address = "a local socket"
    for index in range(start, len(errors)):
        code, message = errors[index]
        errors[index] = (code, f"{message} (connection from {address})")
