"""A deterministic in-process cluster of ``NodeCore`` instances: zdps's simulation harness.

``SimNet`` runs N node cores with no sockets, threads or real time, and carries out
each core's ``Outbox`` exactly as the daemon's IO layer (``zdps.daemon.loop``) does:

* ``outbox.peers`` becomes envelope frames per endpoint per turn, made by
  ``zdps.core.outbox.envelopes`` exactly as the daemon makes them, and is handed to
  ``on_cluster_frame`` of the node listening at that endpoint (``inproc://<id>``, or an
  ``alias``); ``outbox.probes`` goes the same way, ahead of the data, on a link of its
  own (``(sender, endpoint, PROBE_LINK)``), as the daemon's probe link: probes may
  overtake data;
* ``outbox.deliveries`` is what the local XPUB would publish: each batch unpacked into
  its messages, as the daemon does (``zdps.daemon.delivery``), recorded per node as
  ``Delivery(time, topic, header, payload)`` with the header as a dict. A delivery the
  daemon could not send (topic not text, a batch that is not bytes) raises
  ``DaemonCrash``, because the daemon would die on it; a batch that does not unpack is
  bad input, counted as the daemon counts it;
* ``outbox.clients`` frames are encoded with ``encode_api`` and decoded back with
  ``decode_api`` (so unencodable replies fail as they would), recorded per
  ``(node, client)`` with the time; so are ``outbox.pushes``, the shares of queue
  groups, per ``(node, member)`` (a member here never refuses one);
* ``outbox.disconnects``, ``errors`` and ``log`` are recorded per node with the time.

A "turn" is one input (a cluster frame, a subscription, a client frame, a tick)
followed by ``take()``; the outbox is carried out after every turn.

``crash(node)`` discards the node's core and drops everything in flight to or from
it; ``restart(node)`` builds a new core with the same id and endpoint and a larger
incarnation; ``leave(node)`` is a graceful stop: the core says bye, its byes stay in
flight and the node stops. A ``Disconnect`` is recorded but does not drop frames
already in flight (they left the socket).

Client input goes through ``on_client_frame`` as encoded API frames, as in the daemon.

The network and the clock (links, cuts, holds, latencies, ``step``/``advance``) are in
tests/core/sim_network.py; what is recorded and the views on it (``acks``, ``entries``,
``converged`` ...) in tests/core/sim_observations.py. Both are mixed into ``SimNet``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from tests.core.sim_network import PROBE_LINK, TICK_RESOLUTION, Link, Network
from tests.core.sim_observations import CLIENT, Delivery, Observations, Sent
from zdps.core.log_events import LogEvent
from zdps.core.node import NodeCore
from zdps.core.outbox import envelopes
from zdps.core.tunables import CoreConfig
from zdps.wire import (
    API_PUBLISH,
    API_REQUEST,
    LEVEL_OWNER,
    ProtocolError,
    decode_api,
    encode_api,
    encode_envelope,
)
from zdps.wire.api import publish_entry
from zdps.wire.batches import unpack_batch
from zdps.wire.codec import NodeMessage

__all__ = [
    "CLIENT",
    "PROBE_LINK",
    "TICK_RESOLUTION",
    "WALL_START_NS",
    "DaemonCrash",
    "Delivery",
    "Link",
    "Sent",
    "SimNet",
    "SimNode",
    "mesh",
    "wait_for",
]

WALL_START_NS = 1_700_000_000 * 10**9  # the "time.time_ns()" of simulated clock 0


def mesh(names: Iterable[str], config: CoreConfig) -> SimNet:
    """A settled cluster of ``names``, every node joining through the first."""
    net = SimNet(config=config)
    first, *rest = names
    net.add(first)
    for name in rest:
        net.add(name, [first])
    net.settle()
    return net


def wait_for(net: SimNet, condition, timeout: float = 10.0, step: float = 0.05) -> float:
    """Advance simulated time until ``condition()`` holds; the clock then, or fail."""
    deadline = net.clock + timeout
    while not condition():
        assert net.clock < deadline, "condition never became true"
        net.advance(step)
    return net.clock


class DaemonCrash(RuntimeError):
    """A core asked for something the daemon's IO layer would die carrying out."""


@dataclass(slots=True)
class SimNode:
    """One node of the simulated cluster; ``core`` is None while it is down."""

    node: str
    endpoint: str
    seeds: list[str]
    scope: str
    config: CoreConfig
    incarnation: int = 0
    core: NodeCore | None = None
    last_tick: float = -math.inf
    lives: int = 0


@dataclass
class SimNet(Network, Observations):
    """Simulated nodes, clock and network; see the module docstring."""

    scope: str = "sim"
    config: CoreConfig = field(default_factory=CoreConfig)
    record: bool = True
    clock: float = 0.0
    nodes: dict[str, SimNode] = field(default_factory=dict)
    # At scale (bench/scale), hooks instead of records: each node's log events, and the
    # frames of each (sender, endpoint, messages) as they leave.
    on_log: Callable[[str, float, LogEvent], None] | None = None
    on_frames: Callable[[str, str, list[NodeMessage], list[bytes]], None] | None = None
    deliveries: dict[str, list[Delivery]] = field(default_factory=dict)
    client_frames: dict[tuple[str, bytes], list[tuple[float, list]]] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    logs: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    errors: dict[str, list[tuple[float, str, str]]] = field(default_factory=dict)
    disconnects: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    _listeners: dict[str, str] = field(default_factory=dict)
    _next_ref: int = 1

    # ------------------------------------------------------------------ nodes

    @staticmethod
    def endpoint(node: str) -> str:
        return f"inproc://{node}"

    def add(
        self,
        node: str,
        seeds: Iterable[str] = (),
        *,
        scope: str | None = None,
        config: CoreConfig | None = None,
    ) -> NodeCore:
        """Start node ``node`` now; ``seeds`` are node ids or endpoints."""
        if node in self.nodes:
            raise ValueError(f"node {node!r} already exists")
        endpoint = self.endpoint(node)
        sim = self.nodes[node] = SimNode(
            node,
            endpoint,
            [s if "://" in s else self.endpoint(s) for s in seeds],
            scope or self.scope,
            config or self.config,
        )
        self._listeners[endpoint] = node
        for log in (self.deliveries, self.logs, self.errors, self.disconnects):
            log.setdefault(node, [])
        return self._boot(sim)

    def alias(self, endpoint: str, node: str) -> None:
        """Make ``node`` also listen at ``endpoint`` (e.g. another spelling of its address)."""
        self._listeners[endpoint] = node

    def core(self, node: str) -> NodeCore:
        core = self.nodes[node].core
        if core is None:
            raise LookupError(f"node {node!r} is down")
        return core

    def running(self) -> list[str]:
        return sorted(n for n, sim in self.nodes.items() if sim.core is not None)

    def crash(self, node: str) -> None:
        """Kill ``node``: its core is discarded, frames in flight to or from it are lost."""
        self._stop(node, keep_outgoing=False)

    def leave(self, node: str) -> None:
        """Graceful stop: ``leave`` (bye to every peer), carry it out, stop the node."""
        self.core(node).leave(self.clock)
        self._flush(node)
        self._stop(node, keep_outgoing=True)

    def restart(self, node: str, seeds: Iterable[str] | None = None) -> NodeCore:
        """Start ``node`` again (crashing it first if needed), with a larger incarnation."""
        sim = self.nodes[node]
        if sim.core is not None:
            self.crash(node)
        if seeds is not None:
            sim.seeds = [s if "://" in s else self.endpoint(s) for s in seeds]
        return self._boot(sim)

    def _boot(self, sim: SimNode) -> NodeCore:
        sim.incarnation = max(WALL_START_NS + int(self.clock * 1e9), sim.incarnation + 1)
        sim.lives += 1
        sim.last_tick = -math.inf
        sim.core = NodeCore(
            sim.node,
            sim.incarnation,
            sim.scope,
            sim.endpoint,
            list(sim.seeds),
            self.clock,
            config=replace(sim.config),
            info={"sim": True},
        )
        sim.core.start(self.clock)
        self._flush(sim.node)
        return sim.core

    def _stop(self, node: str, keep_outgoing: bool) -> None:
        sim = self.nodes[node]
        sim.core = None
        self._reschedule(node)
        for link in list(self._links):
            src, endpoint = link[:2]
            if self._listeners.get(endpoint) == node or (src == node and not keep_outgoing):
                self.dropped += len(self._links.pop(link))

    # ------------------------------------------------------------------ inputs

    def subscribe(self, node: str, group: bytes, subscribed: bool = True) -> None:
        """A local SUB (un)subscribed ``group`` (the XPUB's report)."""
        self.core(node).on_subscription(group, subscribed, self.clock)
        self._flush(node)

    def unsubscribe(self, node: str, group: bytes) -> None:
        self.subscribe(node, group, subscribed=False)

    def ref(self) -> int:
        """A fresh client ref, unique across the whole simulation."""
        ref = self._next_ref
        self._next_ref += 1
        return ref

    def publish(
        self, node: str, topic: str, payload: bytes = b"", ack: bool = True, client: bytes = CLIENT
    ) -> int:
        """A client of ``node`` publishes one message; returns its ref (0 when ``ack`` is off)."""
        ref = self.ref() if ack else 0
        self.publish_batch(node, [publish_entry(ref, topic, [payload], LEVEL_OWNER)], client)
        return ref

    def refs(self, n: int) -> int:
        """The first of ``n`` consecutive fresh refs (the refs of a batch of ``n``)."""
        first = self._next_ref
        self._next_ref += n
        return first

    def publish_run(
        self,
        node: str,
        topic: str,
        payloads: list[bytes],
        level: int = LEVEL_OWNER,
        client: bytes = CLIENT,
    ) -> int:
        """A client of ``node`` publishes ``payloads`` to ``topic`` as one batch; returns
        the ref of the first (the others' follow)."""
        first = self.refs(len(payloads))
        self.publish_batch(node, [publish_entry(first, topic, payloads, level)], client)
        return first

    def publish_batch(self, node: str, entries: list, client: bytes = CLIENT) -> None:
        """A client's publish frame with ``entries`` as given (may be malformed)."""
        self.client_frame(node, encode_api(API_PUBLISH, entries), client)

    def request(self, node: str, op: str, args: dict, client: bytes = CLIENT) -> int:
        """A client request ``[ref, op, args]``; returns its ref."""
        ref = self.ref()
        self.request_fields(node, [ref, op, args], client)
        return ref

    def request_fields(self, node: str, fields: list, client: bytes = CLIENT) -> None:
        """A request frame with ``fields`` exactly as given (may be malformed)."""
        self.client_frame(node, encode_api(API_REQUEST, *fields), client)

    def client_frame(self, node: str, frame: bytes, client: bytes = CLIENT) -> None:
        """One raw API frame from ``client``, handed over as the daemon does."""
        self.core(node).on_client_frame(client, frame, self.clock)
        self._flush(node)

    def client_gone(self, node: str, client: bytes) -> None:
        """``client``'s connection to ``node`` vanished, as a failed send tells the daemon."""
        self.core(node).client_gone(client)
        self._flush(node)

    def inject(self, node: str, frame: bytes, peer: str | None = None) -> None:
        """Hand ``node`` a raw cluster frame now, bypassing the network; ``peer`` is the
        node the connection's CURVE key names (None: no CURVE)."""
        self.core(node).on_cluster_frame(frame, self.clock, peer)
        self._flush(node)

    def envelope(
        self,
        sender: str,
        messages: list,
        *,
        scope: str | None = None,
        incarnation: int | None = None,
    ) -> bytes:
        """A frame as ``sender`` (its current scope and incarnation unless given) would send.

        ``messages`` are raw arrays (sent as they are, even malformed) or typed messages.
        """
        sim = self.nodes.get(sender)
        return encode_envelope(
            scope if scope is not None else (sim.scope if sim else self.scope),
            sender,
            incarnation if incarnation is not None else (sim.incarnation if sim else 1),
            [m.encode() if isinstance(m, NodeMessage) else m for m in messages],
        )

    # ------------------------------------------------------------------ the IO layer

    def _flush(self, node: str) -> None:
        """Carry out ``node``'s outbox as ``zdps.daemon.loop.Daemon._flush`` does."""
        sim = self.nodes[node]
        core = sim.core
        if core is None:
            return
        out = core.take(self.clock)
        if self.fast:
            self._reschedule(node)
        if not out:
            return
        now = self.clock
        for endpoint in out.disconnects:
            self.disconnects[node].append((now, endpoint))
        header = (core.scope, core.node, core.incarnation)
        for channel, link in ((out.probes, (PROBE_LINK,)), (out.peers, ())):
            for endpoint, messages in channel.items():
                frames = list(envelopes(header, messages))
                if self.on_frames is not None:
                    self.on_frames(node, endpoint, messages, frames)
                for frame in frames:
                    self._send(node, endpoint, frame, link)
        for topic, seq, epoch, n, batch in out.deliveries:
            if not isinstance(topic, str) or not (batch is None or isinstance(batch, bytes)):
                raise DaemonCrash(f"{node} cannot publish {topic!r}/{batch!r}")
            topic.encode()
            if batch is None:
                header = {"seq": seq, "epoch": epoch, "type": "closed"}
                self.deliveries[node].append(Delivery(now, topic, header, b""))
                continue
            try:
                payloads = unpack_batch(batch, n)
            except ProtocolError as exc:
                core.bad_input(exc.code, exc.message)
                continue
            self.deliveries[node] += [
                Delivery(now, topic, {"seq": seq + i, "epoch": epoch}, payload)
                for i, payload in enumerate(payloads)
            ]
        for client, frames in out.clients.items():
            log = self.client_frames.setdefault((node, client), [])
            for frame in frames:
                log.append((now, decode_api(encode_api(*frame))))
        for member, _key, frame, _lost in out.pushes:  # every member takes its share here
            log = self.client_frames.setdefault((node, member), [])
            log.append((now, decode_api(encode_api(*frame))))
        self.errors[node] += [(now, code, message) for code, message in out.errors]
        if self.on_log is None:
            self.logs[node] += [(now, str(event)) for event in out.log]
        else:
            for event in out.log:
                self.on_log(node, now, event)
        if core.outbox:
            self._flush(node)
