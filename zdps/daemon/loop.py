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
batches. It is carried out again at the end of the turn only if something after the
drains added to it (timers, subscriptions, seed connections): at a moderate rate a
turn wakes for one frame, and each carrying-out costs about what handling it does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import logging
import math
import socket
import time
from collections.abc import Callable
from typing import Any

import zmq

from zdps.core.log_events import log_event
from zdps.core.node import NodeCore
from zdps.core.outbox import envelopes
from zdps.daemon.api_output import API_HWM, ApiOutput
from zdps.daemon.config import Config, core_config, node_info
from zdps.daemon.delivery import EXPANSION, LocalOutput
from zdps.daemon.gate import Gate
from zdps.daemon.links import SHUTDOWN_LINGER_MS, PeerLinks, cluster_context, term_within
from zdps.daemon.logs import DebugLog, EventLog, setup
from zdps.daemon.metrics import NodeMetrics
from zdps.daemon.monitors import CONNECTIONS, HANDSHAKE_FAILED, SocketMonitor, bind_monitored
from zdps.daemon.notify import SystemdNotifier
from zdps.daemon.polling import PollSet, drain, name_sender, routed, user_of
from zdps.daemon.pubs import LocalPub
from zdps.daemon.security import CurveSecurity
from zdps.daemon.signals import Signals
from zdps.daemon.subscribers import SubscriberFilter
from zdps.keys import CurveClient
from zdps.memory import keep_freed_memory
from zdps.readiness import readable
from zdps.wire import E_MALFORMED
from zdps.wire.codec import NodeMessage
from zdps.wire.errors import E_NO_PEER_KEY

MAX_FRAME = 256 * 1024 * 1024  # larger incoming frames are refused by libzmq
MAX_SUBSCRIPTION = 1024  # bytes of a subscription message a SUB may send (one is ~270 at most)
# Client frames queued per connection before ZeroMQ stops reading it: a publisher that
# outruns the node waits in its own process, not in this one's memory (64 frames of up
# to 4 MiB each, as the Python clients send them, at most).
API_RCVHWM = 64
# The data path allocates and frees millions of short-lived objects and creates almost
# no cycles: collect the young generation every 50,000 allocations, not 700 (bench/ab:
# node CPU -3 to -5 %), and never scan what start-up made (gc.freeze).
GC_THRESHOLDS = (50_000, 20, 100)
FLUSH_AFTER = 0.0002  # s of draining, then the outbox goes (vs 1 ms: 10k msg/s p99 -10 to -31 %)
MONITOR_EVERY = 0.1  # seconds between two looks at the socket monitors (monitors.py)


class Daemon:
    """A running zdps daemon."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.log = setup(config.node_id, config.log_level, config.log_format)
        self.events = EventLog(self.log)
        self.ctx = cluster_context(config.max_peers)
        self.incarnation = time.time_ns()
        self.signals = Signals()
        self._api_paused = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.notifier = SystemdNotifier()
        self._next_pump = 0.0  # when the socket monitors are next looked at
        self.metrics = NodeMetrics(config.metrics) if config.metrics else None

        self.security = None
        cluster_options: dict[str, Any] = {"maxmsgsize": MAX_FRAME}
        if config.curve:
            self.security = CurveSecurity(
                config.keys(), config.seed_nodes, self._node_at, config.client_keys(),
                config.client_permissions,
            )  # fmt: skip
            cluster_options.update(self.security.server_options())
        self.gate = Gate(self.ctx, self.security, config.max_clients)  # ZAP, before binding
        curve_clients = self.security is not None and self.security.clients is not None
        # The API's and PUBs' options: CURVE with curve_clients, else plain with ZAP.
        client_options = (
            self.security.client_options() if curve_clients else self.gate.client_options()
        )
        # One monitor per socket (monitors.py), for whoever needs its connection events.
        failures = HANDSHAKE_FAILED if curve_clients else 0
        self.monitors: dict[str, SocketMonitor] = {}
        bind = functools.partial(bind_monitored, self.ctx, self.monitors)
        self.cluster = bind(
            "cluster", zmq.ROUTER, config.cluster, HANDSHAKE_FAILED if config.curve else 0,
            **cluster_options,
        )  # fmt: skip
        self.api = bind(
            "api", zmq.ROUTER, config.api, failures | CONNECTIONS,
            maxmsgsize=MAX_FRAME, router_mandatory=1, sndhwm=API_HWM, rcvhwm=API_RCVHWM,
            **client_options,
        )  # fmt: skip
        # XPUB_MANUAL: the node applies each subscription it counts (pubs.py).
        # XPUB_NODROP: a subscriber pub_hwm behind is noticed (expansion.py), not ignored.
        # MAXMSGSIZE: a SUB sends subscriptions only, none longer than a loss-notice one.
        pub_options = {"xpub_manual": 1, "xpub_nodrop": 1, "sndhwm": config.pub_hwm}
        pub_options["maxmsgsize"] = MAX_SUBSCRIPTION
        pub_options |= client_options
        events = CONNECTIONS | failures
        self.pub = bind("pub", zmq.XPUB, config.pub, events, **pub_options)
        self.batch_pub = bind("batch_pub", zmq.XPUB, config.batches, events, **pub_options)
        self.raw_subscribers = SubscriberFilter()  # what the raw PUB's SUBs subscribed to
        self.core = NodeCore(
            config.node_id, self.incarnation, config.scope, config.advertised,
            config.seed_endpoints, time.monotonic(), core_config(config),
            info=node_info(config, self.cluster, self.api, self.pub, self.batch_pub, EXPANSION),
        )  # fmt: skip
        self.api_output = ApiOutput(self.api, self.core)
        self.output = LocalOutput(
            self.pub, self.batch_pub, self.raw_subscribers.wants, self.core, self.events.write,
            config.pub_hwm,
        )  # fmt: skip
        pubs = (("pub", self.pub, self.raw_subscribers), ("batch_pub", self.batch_pub, None))
        self.pubs = {
            sock: LocalPub(sock, self.monitors[name], self.core, config.max_subscriptions, raw)
            for name, sock, raw in pubs
        }
        self.poller = PollSet()
        for sock in (self.cluster, self.api, self.pub, self.batch_pub):
            self.poller.register(sock, zmq.POLLIN)
        self.poller.register(self._wake_r.fileno(), zmq.POLLIN)
        self.poller.register(self.gate.zap.socket, zmq.POLLIN)
        for name in ("api", "pub", "batch_pub"):
            self.gate.count(self.monitors[name])
        curve = None
        if self.security is not None:
            for name in ("cluster", "api", "pub", "batch_pub") if curve_clients else ("cluster",):
                self.security.listen(self.monitors[name])
            curve = self._curve_client
        seeds = config.seed_endpoints
        self.links = PeerLinks(self.ctx, self.poller, self._cannot_dial, seeds, curve)
        self._apply_permissions()
        self.debug = None
        if self.log.isEnabledFor(logging.DEBUG):
            sockets = {"api": self.api, "pub": self.pub, "batch_pub": self.batch_pub}
            self.debug = DebugLog(self.log, self.monitors, sockets, dataclasses.asdict(config))
        self._header = (self.core.scope, self.core.node, self.core.incarnation)

    def _apply_permissions(self) -> None:
        """The clients' permissions, as last read, to the core (the PUBs read them there)."""
        self.core.clients.permissions = None if self.security is None else self.security.permissions

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

    def _serve_zap(self, ready: dict, now: float) -> None:
        """Answer ZAP; each refused connection is counted and logged."""
        refused = self.gate.refusals(ready)
        for code, why, where in refused:
            self.core.count_error(code)
            self.events.refused(code, why, f"refused a connection {where}", now)

    # ------------------------------------------------------------------ the loop

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT, drain, then tell the peers we leave and return 0 (1 if
        the core refused to go on: another node has this node's id).

        An exception that escapes the core is a bug: it is logged, every socket is
        destroyed without linger (no bye), and the daemon exits 1.
        """
        signals = self.signals
        signals.install(self._wake_w.fileno())
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
            while not signals.stop and core.refusal is None:
                self._turn()
                if signals.drain and not core.drain.active:
                    core.start_drain(time.monotonic())
                if core.drain.active:
                    signals.stop |= self._drain_step()
            if core.refusal is not None:
                self.events.write(log_event("refused_to_run", "error", why=core.refusal), 0.0)
            self.notifier.stopping()
            self.events.write(log_event("leaving", pending_acks=core.pending), 0.0)
            core.leave(time.monotonic())
            self._flush()
            self.links.linger()
            for sock in (self.api, self.pub, self.batch_pub):
                sock.setsockopt(zmq.LINGER, SHUTDOWN_LINGER_MS)
        except Exception:
            self.log.exception("%s", log_event("internal_error", "error"))
            self._unwatch()
            self.ctx.destroy(linger=0)
            return 1
        else:
            self.close()
        finally:
            signals.restore()
        return 0 if core.refusal is None else 1

    def _drain_step(self) -> bool:
        """Tell systemd once that the node is stopping; True once the core drained."""
        self.notifier.stopping()
        drained = self.core.drained(time.monotonic())
        self._flush()
        return drained

    def _turn(self) -> None:
        core = self.core
        now = time.monotonic()
        deadline = core.next_deadline()
        ready = dict(self.poller.poll(math.ceil(max(0.0, deadline - now) * 1000)))
        now = time.monotonic()
        if now >= self._next_pump:  # connection events wait for the next look (monitors.py)
            self._next_pump = now + MONITOR_EVERY
            for monitor in self.monitors.values():
                monitor.pump(now)
        self._serve_zap(ready, now)
        drained = self.cluster in ready
        if drained:
            self._drain_routed(self.cluster, self._cluster_message, now)
        if self.api in ready and not core.clients_held_full:
            if drained:  # what the cluster drain produced does not wait for the API's
                self._flush()
            self._drain_routed(self.api, self._client_message, now)
            drained = True
        ticked = now >= deadline  # after the drains (a timeout sees what came in), and
        if ticked:  # before their flush: one flush carries both
            core.tick(now)
        if drained or ticked:  # what the drains read leaves before the rest of the turn
            self._flush()
        later = False  # whether what follows added to the outbox
        for sock, pub in self.pubs.items():
            if sock in ready:
                pub.drain(now)
                later = True
        if self._wake_r.fileno() in ready:
            with contextlib.suppress(BlockingIOError):
                self._wake_r.recv(4096)
        if self.signals.reload:
            self.signals.reload = False
            self.notifier.reloading()
            ignored = log_event("reload_ignored", why="no curve_peers to read")
            self.events.write(ignored if self.security is None else self.security.reload(), now)
            self._apply_permissions()
            self.notifier.reloaded()
        self.links.retry(ready)
        for endpoint, answer in self.links.connection_news(ready):
            core.seed_connection(endpoint, answer)
            later = True
        if later or not (drained or ticked):
            self._flush()
        if self.debug is not None:
            self.debug.turn(ready, lambda: core.status(now), now)
        if self.notifier.active:
            self.notifier.tick(now, core.joined(now), core.summary)
        if core.clients_held_full != self._api_paused:
            # Saturated for long: leave client frames queued in ZeroMQ (backpressure)
            # until the peers confirm what we sent them (clients.py).
            self._api_paused = core.clients_held_full
            if self._api_paused:
                self.poller.unregister(self.api)
            else:
                self.poller.register(self.api, zmq.POLLIN)
        if self.metrics is not None:  # the scrape's view (metrics.py)
            self.metrics.after_turn(now, deadline, time.monotonic(), core.status)

    def _drain_routed(
        self, sock: zmq.Socket, handle: Callable[[bytes, Any, float], bool], now: float
    ) -> None:
        """The messages waiting on a ROUTER (cluster or API), each to ``handle`` with its
        identity, its frame (None for a message of more than one) and the time; it
        returns False to stop the drain. Bad input it causes names the address it came
        from. The outbox is carried out every FLUSH_AFTER, and a long drain of the cluster
        socket lets the clients in then, so that ``zdps status`` never waits for it."""
        core = self.core
        flush_at = now + FLUSH_AFTER
        for identity, frame in drain(sock, routed(sock)):
            errors = core.outbox.errors
            reported = len(errors)
            go_on = handle(identity, frame, now)
            if frame is not None and len(errors) > reported:
                name_sender(errors, reported, frame)
            if not go_on:
                return
            if (clock := time.monotonic()) >= flush_at:
                self._flush()
                now, flush_at = clock, clock + FLUSH_AFTER
                api_open = not self.core.clients_held_full
                if sock is self.cluster and api_open and readable(self.api):
                    self._drain_routed(self.api, self._client_message, now)  # status waits not

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
        user = None if core.clients.permissions is None else user_of(frame)
        core.on_client_frame(client, frame.bytes, now, user)
        return not core.clients_held_full  # the rest stays queued in ZeroMQ (clients.py)

    # ------------------------------------------------------------------ output

    def _flush(self) -> None:
        now = time.monotonic()
        out = self.core.take(now)
        self.output.owed(now)
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
            self.output.deliver(out.deliveries, now)
        if out.clients or out.pushes:
            self.api_output.send(out)
        for code, message in out.errors:
            self.events.bad_input(code, message, now)
        for event in out.log:
            self.events.write(event, now)

    def _send_probes(self, probes: dict[str, list[NodeMessage]]) -> None:
        for endpoint, messages in probes.items():
            for frame in envelopes(self._header, messages):
                self.links.send_probe(endpoint, frame)

    def _unwatch(self) -> None:
        """Stop every monitor before its socket closes (socket_monitor.py)."""
        for monitor in self.monitors.values():
            monitor.close()
        self.links.unwatch()

    def close(self) -> None:
        """Close every socket; each keeps the LINGER it has (1 s after a graceful leave)."""
        self._unwatch()
        for sock in (self.cluster, self.api, self.pub, self.batch_pub):
            sock.close()
        self.links.close()
        self.gate.close()
        self.notifier.close()
        if self.metrics is not None:
            self.metrics.close()
        if not term_within(self.ctx):
            why = "ZeroMQ's context did not terminate; leaving without it"
            self.events.write(log_event("exit_unclean", "warning", why=why), 0.0)
        self._wake_r.close()
        self._wake_w.close()
