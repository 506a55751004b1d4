"""A deterministic in-process cluster of ``NodeCore`` instances: zdps's simulation harness.

``SimNet`` runs N node cores with no sockets, threads or real time, and carries out
each core's ``Outbox`` exactly as the daemon's IO layer (``zdps.daemon.loop``) does:

* ``outbox.peers`` becomes envelope frames per endpoint per turn, made by
  ``zdps.core.outbox.envelopes`` exactly as the daemon makes them, and is handed to
  ``on_cluster_frame`` of the node listening at that endpoint (``inproc://<id>``, or an
  ``alias``); ``outbox.probes`` goes the same way, ahead of the data, on a link of its
  own (``(sender, endpoint, PROBE_LINK)``), as the daemon's probe link: probes may
  overtake data;
* ``outbox.deliveries`` is what the local XPUB would publish: recorded per node as
  ``Delivery(time, topic, header, payload)`` with the header decoded. A delivery the
  daemon could not send (topic not text, header or payload not bytes) raises
  ``DaemonCrash``, because the daemon would die on it;
* ``outbox.clients`` frames are encoded with ``encode_api`` and decoded back with
  ``decode_api`` (so unencodable replies fail as they would), recorded per
  ``(node, client)`` with the time;
* ``outbox.disconnects``, ``errors`` and ``log`` are recorded per node with the time.

A "turn" is one input (a cluster frame, a subscription, a client frame, a tick)
followed by ``take()``; the outbox is carried out after every turn.

Time is simulated: ``clock`` moves only inside ``step``/``run_until_quiet``/
``advance``, which process events in time order. A frame is due ``latency`` seconds
after it was sent (0 by default: the same instant); a node's tick is due at its
``next_deadline``. At equal times frames go before ticks (the daemon drains its
sockets before it runs timers). A node is never ticked twice at the same instant: a
deadline at or before its last tick is taken as ``TICK_RESOLUTION`` later, as the
daemon's loop spins until its monotonic clock moves.

The network is FIFO per directed link ``(sender id, endpoint)``, whatever the
latencies. ``cut(a, b)`` drops frames from ``a`` to ``b`` (those sent while cut and
those still in flight when delivered), ``heal`` undoes it; ``hold(a, b)`` keeps them
in flight instead (``held`` shows them) until ``release``. A frame for an endpoint
where no running node listens is dropped. ``crash(node)`` discards the node's core
and drops everything in flight to or from it; ``restart(node)`` builds a new core with
the same id and endpoint and a larger incarnation; ``leave(node)`` is a graceful stop:
the core says bye, its byes stay in flight and the node stops. A ``Disconnect`` is
recorded but does not drop frames already in flight (they left the socket).

Client input goes through ``on_client_frame`` as encoded API frames, as in the daemon.

Observations: ``deliveries``, ``client_frames`` (with ``acks``/``nacks``/``replies``),
``sent`` (every envelope, decoded, with ``entries(kind)`` to count data entries),
``logs``, ``errors``, ``dropped``. ``converged()`` says whether every running node sees
exactly every other running node as alive and on its ring.

Randomised schedules (delays, loss, partitions, crashes) are meant to be built on top:
``latency``/``link_latency`` set delays, ``in_flight`` + ``deliver`` let a scheduler
pick which link moves next while FIFO per link is kept.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from zdps.core.node import NodeCore
from zdps.core.outbox import envelopes
from zdps.core.ring import HashRing
from zdps.core.tunables import CoreConfig
from zdps.wire import (
    API_ACK,
    API_NACK,
    API_PUBLISH,
    API_REPLY,
    API_REQUEST,
    decode_api,
    decode_envelope,
    encode_api,
    encode_envelope,
    unpack,
)
from zdps.wire.codec import NodeMessage

CLIENT = b"client"
TICK_RESOLUTION = 1e-6
WALL_START_NS = 1_700_000_000 * 10**9  # the "time.time_ns()" of simulated clock 0

Link = tuple[str, ...]  # (sender node id, endpoint), or with PROBE_LINK for the probe link
PROBE_LINK = "probe"


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


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message the node's XPUB published."""

    time: float
    topic: str
    header: dict
    payload: bytes


@dataclass(frozen=True, slots=True)
class Sent:
    """One envelope frame a node sent (messages decoded back from the frame)."""

    time: float
    src: str
    endpoint: str
    dst: str | None  # the node listening at ``endpoint`` when it was sent
    messages: list


@dataclass(slots=True)
class _Frame:
    due: float
    order: int
    frame: bytes


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
class SimNet:
    """Simulated nodes, clock and network; see the module docstring."""

    scope: str = "sim"
    config: CoreConfig = field(default_factory=CoreConfig)
    latency: float = 0.0
    record: bool = True
    clock: float = 0.0
    nodes: dict[str, SimNode] = field(default_factory=dict)
    link_latency: dict[tuple[str, str], float] = field(default_factory=dict)
    deliveries: dict[str, list[Delivery]] = field(default_factory=dict)
    client_frames: dict[tuple[str, bytes], list[tuple[float, list]]] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    logs: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    errors: dict[str, list[tuple[float, str, str]]] = field(default_factory=dict)
    disconnects: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    dropped: int = 0
    _listeners: dict[str, str] = field(default_factory=dict)
    _links: dict[Link, deque[_Frame]] = field(default_factory=dict)
    _cut: set[tuple[str, str]] = field(default_factory=set)
    _held: set[tuple[str, str]] = field(default_factory=set)
    _order: int = 0
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
        for link in list(self._links):
            src, endpoint = link[:2]
            if self._listeners.get(endpoint) == node or (src == node and not keep_outgoing):
                self.dropped += len(self._links.pop(link))

    # ------------------------------------------------------------------ faults

    def cut(self, a: str, b: str, both: bool = True) -> None:
        """Drop every frame from ``a`` to ``b`` (and ``b`` to ``a`` if ``both``)."""
        self._cut.add((a, b))
        if both:
            self._cut.add((b, a))

    def heal(self, a: str | None = None, b: str | None = None, both: bool = True) -> None:
        """Undo ``cut(a, b)``; with no arguments, heal every link."""
        if a is None:
            self._cut.clear()
            return
        self._cut.discard((a, b))
        if both:
            self._cut.discard((b, a))

    def isolate(self, node: str) -> None:
        """Cut ``node`` from every other node, both ways."""
        for other in self.nodes:
            if other != node:
                self.cut(node, other)

    def is_cut(self, a: str, b: str) -> bool:
        return (a, b) in self._cut

    def hold(self, a: str, b: str) -> None:
        """Keep frames from ``a`` to ``b`` in flight (not lost) until ``release(a, b)``."""
        self._held.add((a, b))

    def release(self, a: str, b: str) -> None:
        self._held.discard((a, b))

    def held(self, a: str, b: str) -> list[list]:
        """The messages of the frames in flight from ``a`` to ``b``, oldest first."""
        queue = self._links.get((a, self.nodes[b].endpoint), ())
        return [m for item in queue for m in decode_envelope(item.frame)[3]]

    def _is_held(self, link: Link) -> bool:
        return (link[0], self._listeners.get(link[1])) in self._held

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
        self.publish_batch(node, [[ref, topic, payload]], client)
        return ref

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

    def inject(self, node: str, frame: bytes) -> None:
        """Hand ``node`` a raw cluster frame now, bypassing the network."""
        self.core(node).on_cluster_frame(frame, self.clock)
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

    # ------------------------------------------------------------------ time

    def in_flight(self) -> list[Link]:
        """Links with frames in flight, oldest head first."""
        heads = [(q[0].order, link) for link, q in self._links.items() if q]
        return [link for _, link in sorted(heads)]

    def pending_frames(self) -> int:
        return sum(len(q) for q in self._links.values())

    def deliver(self, link: Link) -> None:
        """Deliver the oldest frame on ``link`` now, whatever its due time."""
        item = self._links[link].popleft()
        if not self._links[link]:
            del self._links[link]
        self._receive(link, item)

    def step(self, until: float = math.inf) -> bool:
        """Process the next event (frame or tick) if it is due by ``until``; False if none."""
        frame_key, frame_link = (math.inf, 0), None
        for link, queue in self._links.items():
            if self._held and self._is_held(link):
                continue
            key = (queue[0].due, queue[0].order)
            if key < frame_key:
                frame_key, frame_link = key, link
        frame_due = frame_key[0]
        tick_due, tick_node = math.inf, None
        for name in sorted(self.nodes):
            sim = self.nodes[name]
            if sim.core is not None:
                due = max(sim.core.next_deadline(self.clock), sim.last_tick + TICK_RESOLUTION)
                if due < tick_due:
                    tick_due, tick_node = due, name
        if frame_link is not None and frame_due <= tick_due:
            if frame_due > until:
                return False
            self.clock = max(self.clock, frame_due)
            self.deliver(frame_link)
            return True
        if tick_node is None or tick_due > until:
            return False
        self.clock = max(self.clock, tick_due)
        sim = self.nodes[tick_node]
        sim.last_tick = self.clock
        sim.core.tick(self.clock)
        self._flush(tick_node)
        return True

    def run_until_quiet(self, max_events: int = 100_000) -> int:
        """Process events in time order until only held frames are in flight; returns the count.

        With zero latency no time passes unless a tick was already due. With a latency
        of a heartbeat or more the network may never be quiet: RuntimeError after
        ``max_events``.
        """
        for done in range(max_events):
            if not self._links or (self._held and all(map(self._is_held, self._links))):
                return done
            self.step()
        raise RuntimeError(f"network not quiet after {max_events} events")

    def advance(self, seconds: float, max_events: int = 1_000_000) -> None:
        """Let ``seconds`` of simulated time pass, processing every event due meanwhile."""
        until = self.clock + seconds
        for _ in range(max_events):
            if not self.step(until):
                self.clock = until
                return
        raise RuntimeError(f"more than {max_events} events in {seconds} s")

    def settle(self, timeout: float = 10.0) -> None:
        """Run until the running nodes form a full mesh and nothing is in flight."""
        deadline = self.clock + timeout
        self.run_until_quiet()
        while not self.converged():
            if self.clock >= deadline:
                raise AssertionError(f"no full mesh after {timeout} s: {self.views()}")
            self.advance(self.config.heartbeat_interval)
            self.run_until_quiet()

    # ------------------------------------------------------------------ observations

    def views(self) -> dict[str, set[str]]:
        """Each running node's set of alive peers."""
        return {n: set(self.core(n).membership.alive()) for n in self.running()}

    def converged(self) -> bool:
        """Every running node sees exactly the others as alive, and rings agree."""
        running = set(self.running())
        return all(
            set(self.core(n).membership.alive()) == running - {n}
            and self.core(n).ring.nodes == running
            for n in running
        )

    def owner(self, topic: str, nodes: Iterable[str] | None = None) -> str | None:
        """The owner of ``topic`` on a ring of ``nodes`` (default: the running nodes)."""
        return HashRing(self.running() if nodes is None else nodes).owner(topic)

    def received(self, node: str, topic: str | None = None) -> list[Delivery]:
        """``node``'s deliveries, optionally only those of ``topic``."""
        return [d for d in self.deliveries[node] if topic is None or d.topic == topic]

    def stamps(self, node: str, topic: str) -> list[tuple[int, int]]:
        """(epoch, seq) of the ordinary messages ``node`` delivered on ``topic``."""
        return [
            (d.header["epoch"], d.header["seq"])
            for d in self.received(node, topic)
            if "type" not in d.header
        ]

    def frames(self, node: str, client: bytes = CLIENT) -> list[list]:
        """Decoded API frames ``[kind, *fields]`` sent to ``client`` of ``node``."""
        return [frame for _, frame in self.client_frames.get((node, client), [])]

    def answered_at(self, node: str, ref: Any, client: bytes = CLIENT) -> float | None:
        """When ``client`` of ``node`` first got an ack, nack or reply for ``ref``."""
        for time, (kind, *fields) in self.client_frames.get((node, client), []):
            if kind == API_ACK and any(e[0] <= ref < e[0] + e[4] for e in fields[0]):
                return time
            if kind == API_NACK and any(e[0] == ref for e in fields[0]):
                return time
            if kind == API_REPLY and fields[0] == ref:
                return time
        return None

    def acks(self, node: str, client: bytes = CLIENT) -> dict[Any, list]:
        """ref -> [seq, nodes, subscribers] of every API ack sent to ``client``."""
        found: dict[Any, list] = {}
        for kind, *fields in self.frames(node, client):
            if kind == API_ACK:
                for ref, seq, nodes, subscribers, n in fields[0]:  # a run of n acks
                    for i in range(n):
                        found[ref + i] = [seq + i, nodes, subscribers]
        return found

    def nacks(self, node: str, client: bytes = CLIENT) -> dict[Any, tuple[str, str]]:
        """ref -> (code, message) of every API nack sent to ``client``."""
        found: dict[Any, tuple[str, str]] = {}
        for kind, *fields in self.frames(node, client):
            if kind == API_NACK:
                for ref, code, message in fields[0]:
                    found[ref] = (code, message)
        return found

    def replies(self, node: str, client: bytes = CLIENT) -> dict[Any, tuple[bool, Any]]:
        """ref -> (ok, result) of every request reply sent to ``client``."""
        return {
            fields[0]: (fields[1], fields[2])
            for kind, *fields in self.frames(node, client)
            if kind == API_REPLY
        }

    def entries(
        self, kind: str, *, src: str | None = None, dst: str | None = None
    ) -> list[tuple[Sent, Any]]:
        """Every message body entry of ``kind`` sent (as recorded), with its envelope.

        Data kinds (fwd, fanout, ack, ...) carry a list of entries and yield one item
        per entry; other kinds yield their single body.
        """
        found = []
        for sent in self.sent:
            if (src is None or sent.src == src) and (dst is None or sent.dst == dst):
                for message in sent.messages:
                    if isinstance(message, list) and message and message[0] == kind:
                        body = message[1] if len(message) > 1 else None
                        if isinstance(body, list):
                            found += [(sent, entry) for entry in body]
                        else:
                            found.append((sent, body))
        return found

    def log_lines(self, node: str, text: str) -> list[float]:
        """Times at which ``node`` logged a line containing ``text``."""
        return [t for t, line in self.logs[node] if text in line]

    def error_codes(self, node: str) -> dict[str, int]:
        """``node``'s current core error counters."""
        return dict(self.core(node).errors)

    # ------------------------------------------------------------------ the IO layer

    def _flush(self, node: str) -> None:
        """Carry out ``node``'s outbox as ``zdps.daemon.loop.Daemon._flush`` does."""
        sim = self.nodes[node]
        core = sim.core
        if core is None:
            return
        out = core.take()
        if not out:
            return
        now = self.clock
        for endpoint in out.disconnects:
            self.disconnects[node].append((now, endpoint))
        header = (core.scope, core.node, core.incarnation)
        for channel, link in ((out.probes, (PROBE_LINK,)), (out.peers, ())):
            for endpoint, messages in channel.items():
                for frame in envelopes(header, messages):
                    self._send(node, endpoint, frame, link)
        for topic, header, payload in out.deliveries:
            if not (isinstance(topic, str) and isinstance(header, bytes)):
                raise DaemonCrash(f"{node} cannot publish {topic!r}/{header!r}")
            if not isinstance(payload, bytes):
                raise DaemonCrash(f"{node} cannot publish payload {payload!r}")
            topic.encode()
            self.deliveries[node].append(Delivery(now, topic, unpack(header), payload))
        for client, frames in out.clients.items():
            log = self.client_frames.setdefault((node, client), [])
            for frame in frames:
                log.append((now, decode_api(encode_api(*frame))))
        self.errors[node] += [(now, code, message) for code, message in out.errors]
        self.logs[node] += [(now, line) for line in out.log]
        if core.outbox:
            self._flush(node)

    def _send(self, src: str, endpoint: str, frame: bytes, channel: tuple = ()) -> None:
        dst = self._listeners.get(endpoint)
        if self.record:
            self.sent.append(Sent(self.clock, src, endpoint, dst, decode_envelope(frame)[3]))
        if dst is not None and (src, dst) in self._cut:
            self.dropped += 1
            return
        link = (src, endpoint, *channel)
        queue = self._links.setdefault(link, deque())
        delay = self.link_latency.get((src, dst or ""), self.latency)
        due = self.clock + delay
        if queue:
            due = max(due, queue[-1].due)  # FIFO per link whatever the latencies
        self._order += 1
        queue.append(_Frame(due, self._order, frame))

    def _receive(self, link: Link, item: _Frame) -> None:
        src, endpoint = link[:2]
        dst = self._listeners.get(endpoint)
        if dst is None or self.nodes[dst].core is None or (src, dst) in self._cut:
            self.dropped += 1
            return
        self.core(dst).on_cluster_frame(item.frame, self.clock)
        self._flush(dst)
