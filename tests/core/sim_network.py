"""The simulated network and clock of ``SimNet`` (tests/core/node_net.py): links, faults, time.

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
where no running node listens is dropped.

Randomised schedules (delays, loss, partitions, crashes) are meant to be built on top:
``latency``/``link_latency`` set delays, ``in_flight`` + ``deliver`` let a scheduler
pick which link moves next while FIFO per link is kept. For large clusters
(bench/scale) the network also draws from ``rng``: ``jitter`` (the mean of an
exponential extra delay per frame: a latency distribution), ``loss`` (a frame lost
on the wire and sent again by TCP: it and, FIFO, all behind it on its link come
``rto`` late, doubled for each further loss) and ``drop`` (a frame that vanishes, as
when a connection breaks). ``fast`` keeps the next frame and the next tick in heaps,
so an event costs O(log n) instead of a scan of every link and node; it assumes the
cores are driven only through ``SimNet`` (a core changed behind its back keeps its
old deadline), which is why the tests' default is the scan.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from tests.core.sim_observations import Sent
from zdps.wire import decode_envelope

TICK_RESOLUTION = 1e-6

Link = tuple[str, ...]  # (sender node id, endpoint), or with PROBE_LINK for the probe link
PROBE_LINK = "probe"


@dataclass(slots=True)
class Frame:
    due: float
    order: int
    frame: bytes


@dataclass
class Network:
    """``SimNet``'s links, faults and clock. Mixed into ``SimNet``, whose fields it also
    uses: ``clock``, ``nodes``, ``record``, ``sent`` and ``_listeners``."""

    latency: float = 0.0
    link_latency: dict[tuple[str, str], float] = field(default_factory=dict)
    jitter: float = 0.0  # mean extra delay of a frame, exponentially distributed
    loss: float = 0.0  # probability that a frame is lost once and retransmitted
    rto: float = 0.2  # TCP's retransmission timeout (Linux: 200 ms at least)
    drop: float = 0.0  # probability that a frame never arrives
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    fast: bool = False  # heaps instead of scans (see the module docstring)
    dropped: int = 0
    retransmitted: int = 0
    _links: dict[Link, deque[Frame]] = field(default_factory=dict)
    _cut: set[tuple[str, str]] = field(default_factory=set)
    _side: dict[str, int] = field(default_factory=dict)  # split(): node -> its side
    _held: set[tuple[str, str]] = field(default_factory=set)
    _order: int = 0
    _frame_heap: list[tuple[float, int, Link]] = field(default_factory=list)
    _tick_heap: list[tuple[float, str]] = field(default_factory=list)
    _tick_due: dict[str, float] = field(default_factory=dict)

    # ------------------------------------------------------------------ faults

    def cut(self, a: str, b: str, both: bool = True) -> None:
        """Drop every frame from ``a`` to ``b`` (and ``b`` to ``a`` if ``both``)."""
        self._cut.add((a, b))
        if both:
            self._cut.add((b, a))

    def split(self, *sides: Iterable[str]) -> None:
        """A netsplit: drop every frame between nodes of different ``sides`` until
        ``heal()`` (one set per side, not a cut per pair: 1,000 nodes make 500,000)."""
        self._side = {node: i for i, side in enumerate(sides) for node in side}

    def _apart(self, a: str, b: str) -> bool:
        side = self._side
        return a in side and b in side and side[a] != side[b]

    def heal(self, a: str | None = None, b: str | None = None, both: bool = True) -> None:
        """Undo ``cut(a, b)``; with no arguments, heal every link and any split."""
        if a is None:
            self._cut.clear()
            self._side.clear()
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
        frame_due, frame_link = self._next_frame()
        tick_due, tick_node = self._next_tick()
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

    def _next_frame(self) -> tuple[float, Link | None]:
        """The due time and link of the next frame to deliver (held links wait)."""
        if self.fast and not self._held:
            heap, links = self._frame_heap, self._links
            while heap:
                due, order, link = heap[0]
                queue = links.get(link)
                if queue and queue[0].order == order:
                    return due, link
                heapq.heappop(heap)  # delivered or dropped meanwhile
            return math.inf, None
        frame_key, frame_link = (math.inf, 0), None
        for link, queue in self._links.items():
            if self._held and self._is_held(link):
                continue
            key = (queue[0].due, queue[0].order)
            if key < frame_key:
                frame_key, frame_link = key, link
        return frame_key[0], frame_link

    def _next_tick(self) -> tuple[float, str | None]:
        """The due time and node of the next tick; at equal times the first node id."""
        if self.fast:
            heap, due_of = self._tick_heap, self._tick_due
            while heap:
                due, name = heap[0]
                if due_of.get(name) == due:
                    return due, name
                heapq.heappop(heap)  # rescheduled, or the node went down
            return math.inf, None
        tick_due, tick_node = math.inf, None
        for name in sorted(self.nodes):
            sim = self.nodes[name]
            if sim.core is not None:
                due = max(sim.core.next_deadline(), sim.last_tick + TICK_RESOLUTION)
                if due < tick_due:
                    tick_due, tick_node = due, name
        return tick_due, tick_node

    def _reschedule(self, node: str) -> None:
        """``node`` had a turn (or went down): its next tick, for ``fast``."""
        sim = self.nodes[node]
        if sim.core is None:
            self._tick_due.pop(node, None)
            return
        due = max(sim.core.next_deadline(), sim.last_tick + TICK_RESOLUTION)
        if self._tick_due.get(node) != due:
            self._tick_due[node] = due
            heapq.heappush(self._tick_heap, (due, node))

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

    # ------------------------------------------------------------------ frames

    def _send(self, src: str, endpoint: str, frame: bytes, channel: tuple = ()) -> None:
        dst = self._listeners.get(endpoint)
        if self.record:
            self.sent.append(Sent(self.clock, src, endpoint, dst, decode_envelope(frame)[3]))
        if dst is not None and ((src, dst) in self._cut or (self._side and self._apart(src, dst))):
            self.dropped += 1
            return
        if self.drop and self.rng.random() < self.drop:
            self.dropped += 1
            return
        link = (src, endpoint, *channel)
        queue = self._links.setdefault(link, deque())
        due = self.clock + self.link_latency.get((src, dst or ""), self.latency)
        if self.jitter:
            due += self.rng.expovariate(1 / self.jitter)
        rto = self.rto
        while self.loss and self.rng.random() < self.loss:
            self.retransmitted += 1
            due, rto = due + rto, rto * 2
        if queue:
            due = max(due, queue[-1].due)  # FIFO per link whatever the latencies
        self._order += 1
        queue.append(Frame(due, self._order, frame))
        if self.fast:
            heapq.heappush(self._frame_heap, (due, self._order, link))

    def _receive(self, link: Link, item: Frame) -> None:
        src, endpoint = link[:2]
        dst = self._listeners.get(endpoint)
        if (
            dst is None
            or self.nodes[dst].core is None
            or (src, dst) in self._cut
            or (self._side and self._apart(src, dst))
        ):
            self.dropped += 1
            return
        self.core(dst).on_cluster_frame(item.frame, self.clock)
        self._flush(dst)
