"""Which peers get a ping each heartbeat interval (docs/PROTOCOL.md §4.3).

A ping to every peer every interval made each node send and receive 5 (N - 1) frames a
second: 1.2 Mbit/s a node at 300 nodes, O(N²) in the cluster (docs/SCALE.md). Pings
carry anti-entropy digests, which need not reach every peer every interval, and SWIM
alone tells liveness. So a node pings at most ``fanout`` peers an interval, in rounds
over its alive peers, shuffled at each (as memberlist's gossip picks a few peers, but
in turn, so that no peer waits long): each peer gets a ping every ``ceil(n / fanout)``
intervals, and at most two rounds apart. A cluster no larger than the fanout pings
everyone every interval, as before.

The silence backstop (swim.py) drops a peer not heard from for ``peer_timeout``: it
needs a ping more often than that, so ``silence`` stretches it to three rounds.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from zdps.core.membership_actions import Send
from zdps.core.peers import PeerState, PeerTable
from zdps.wire.gossip import Ping


class PingRounds:
    """The round-robin of ping targets of one node."""

    def __init__(self, fanout: int, seed: str) -> None:
        assert fanout >= 1
        self.fanout = fanout
        self._rng = random.Random(f"{seed}:pings")
        self._order: list[str] = []  # this round's peers, shuffled
        self._cursor = 0

    def targets(self, peers: PeerTable) -> list[str]:
        """This interval's ping targets among the alive ``peers``: all of them, or
        ``fanout`` distinct ones in turn. One that came up during a round waits for the
        next one; one that is no longer alive is passed over."""
        alive = peers.alive()
        if len(alive) <= self.fanout:
            return alive
        targets: list[str] = []
        while len(targets) < self.fanout:  # a fresh round has more alive peers than that
            if self._cursor >= len(self._order):
                self._order = list(alive)
                self._rng.shuffle(self._order)
                self._cursor = 0
            node = self._order[self._cursor]
            self._cursor += 1
            peer = peers.get(node)
            if peer is not None and peer.state is PeerState.ALIVE and node not in targets:
                targets.append(node)
        return targets

    def pings(
        self, peers: PeerTable, endpoint: str, scope_digest: Callable[[str], str] | None
    ) -> list[Send]:
        """This interval's pings, from the node advertising ``endpoint``: its view digest,
        and the scope digest each target gets (one ``Ping`` per digest form)."""
        view, made = peers.view_digest(), {}
        sends = []
        for node in self.targets(peers):
            digest = scope_digest(node) if scope_digest is not None else None
            if digest not in made:
                made[digest] = Ping(view, endpoint, digest)
            sends.append(Send(peers[node].endpoint, made[digest]))
        return sends

    def silence(self, peers: int, interval: float, timeout: float) -> float:
        """How long a peer may stay silent before the backstop drops it, with ``peers``
        alive peers: ``timeout``, or three rounds and an interval, whichever is longer
        (a peer's pings come two rounds apart at most; its view may hold more peers)."""
        rounds = math.ceil(peers / self.fanout)
        return max(timeout, (3 * rounds + 1) * interval)
