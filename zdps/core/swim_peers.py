"""The peers the SWIM detector (swim.py) watches, kept so that its next deadline is no scan.

After every turn the daemon asks the detector when it next has something to do: the
earliest of its probe's timers, of every peer's silence backstop (last heard from +
``silence_timeout``) and of every suspicion's timers. A scan of every peer made that
O(N) per frame received, O(N²) a second in a full mesh. Here the peers are kept in the
order they were last heard from, least recently first: time never goes back (the
daemon's clock is monotonic), so a peer heard from now goes last, and the first one's
silence is the earliest. The suspected peers' timers are kept in a heap: few, but half
the cluster in a netsplit (500 at 1,000 nodes, for every turn of every node).
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class Suspicion:
    started: float
    expected: int  # confirmations that bring the timeout down to ``low``
    low: float
    high: float
    accusers: set[str]
    next_tell: float
    confirmations: int = 0
    confirmed_at: float = -math.inf  # when the last confirmation came
    told: bool = False  # this node told everyone its own accusation

    def timer(self) -> float:
        """The first of its timers: the timeout, or telling the target again."""
        return min(self.deadline(), self.next_tell)

    def deadline(self) -> float:
        """When it times out. A confirmation may bring that before its own arrival: then
        it times out as it arrives, which is no sign that this node stalled."""
        if self.expected < 1:
            return self.started + self.low
        done = math.log(self.confirmations + 1) / math.log(self.expected + 1)
        timeout = max(self.low, self.high - done * (self.high - self.low))
        return max(self.confirmed_at, self.started + timeout)


@dataclass(slots=True)
class Peer:
    incarnation: int
    last_heard: float  # changed through ``WatchedPeers`` only, as ``suspicion`` is
    version: int = 0
    suspicion: Suspicion | None = None


class WatchedPeers:
    """Node id: ``Peer`` (``peers``), in the order they were last heard from."""

    def __init__(self) -> None:
        self.peers: dict[str, Peer] = {}
        self._quiet: OrderedDict[str, None] = OrderedDict()  # least recently heard first
        self._suspects: set[str] = set()
        self._timers: list[tuple[float, str]] = []  # (timer, node), stale ones included

    def add(self, node: str, incarnation: int, now: float) -> None:
        """Watch ``node``, not watched yet, as just heard from."""
        assert node not in self.peers, node
        self._last(node, now)
        self.peers[node] = Peer(incarnation, now)

    def remove(self, node: str) -> bool:
        """Stop watching ``node``; False if it was not watched."""
        if self.peers.pop(node, None) is None:
            return False
        del self._quiet[node]
        self._suspects.discard(node)
        return True

    def heard(self, node: str, now: float) -> None:
        """Anything at all arrived from ``node`` (watched or not)."""
        peer = self.peers.get(node)
        if peer is not None:
            self._last(node, now)
            peer.last_heard = now

    def suspect(self, node: str, suspicion: Suspicion | None) -> None:
        """``node``'s suspicion starts (or ends: None)."""
        self.peers[node].suspicion = suspicion
        if suspicion is None:
            self._suspects.discard(node)
        else:
            self._suspects.add(node)
            self.retime(node)

    def retime(self, node: str) -> None:
        """``node``'s suspicion changed its timers (a confirmation, a tell): every change
        must come here, or ``earliest`` loses it."""
        suspicion = self.peers[node].suspicion
        assert suspicion is not None, node
        heapq.heappush(self._timers, (suspicion.timer(), node))
        if len(self._timers) > 4 * len(self._suspects) + 64:
            self._rebuild()

    def earliest(self, silence: float) -> float:
        """The earliest silence backstop or suspicion timer (of at least one peer)."""
        assert self.peers
        deadline = self.peers[next(iter(self._quiet))].last_heard + silence
        timers = self._timers
        while timers:
            at, node = timers[0]
            if self._current(at, node):
                return min(deadline, at)
            heapq.heappop(timers)
        return deadline

    def due(self, now: float, silence: float) -> tuple[list[str], list[str]]:
        """The peers silent for ``silence`` by ``now``, from the front of the heard-from
        order, and the suspected peers with a timer due, from the heap: no scan of every
        peer, which a detector woken for each of 500 suspicions could not afford."""
        silent = []
        peers = self.peers
        for node in self._quiet:
            if peers[node].last_heard + silence > now:
                break
            silent.append(node)
        timed: dict[str, None] = {}  # each node once: a timer may be in the heap twice
        timers = self._timers
        while timers and timers[0][0] <= now:
            at, node = heapq.heappop(timers)
            if self._current(at, node):
                timed[node] = None
        return silent, list(timed)

    def _current(self, at: float, node: str) -> bool:
        """Whether a heap entry is ``node``'s timer still, not stale (the peer left, or
        its suspicion's timers changed since)."""
        peer = self.peers.get(node)
        return peer is not None and peer.suspicion is not None and peer.suspicion.timer() == at

    def _rebuild(self) -> None:
        self._timers = [(self.peers[n].suspicion.timer(), n) for n in self._suspects]  # type: ignore[union-attr]
        heapq.heapify(self._timers)

    def recent(self, count: int, other_than: str) -> list[str]:
        """Up to ``count`` peers not under suspicion, other than ``other_than``, most
        recently heard first: those likely to answer."""
        found: list[str] = []
        suspects = self._suspects
        for node in reversed(self._quiet):
            if node != other_than and node not in suspects:
                found.append(node)
                if len(found) == count:
                    break
        return found

    def stalled(self, late: float, now: float) -> None:
        """This node was not running for ``late`` seconds: hold none of it against peers.

        Every time moves by the same rising function, so their order holds.
        """
        for peer in self.peers.values():
            peer.last_heard = min(now, peer.last_heard + late)
            if peer.suspicion is not None:
                peer.suspicion.started += late
                peer.suspicion.confirmed_at += late
                peer.suspicion.next_tell += late
        self._rebuild()

    def _last(self, node: str, now: float) -> None:
        """``node`` heard from at ``now`` goes last, which keeps the order."""
        quiet = self._quiet
        assert not quiet or now >= self.peers[next(reversed(quiet))].last_heard, "time went back"
        quiet[node] = None
        quiet.move_to_end(node)
