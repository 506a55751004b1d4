"""Cluster membership: who the live peers are, as a sans-IO state machine.

Protocol (docs/PROTOCOL.md, "Membership"):

* A node says ``hello`` to each seed and to every peer it learns of. A hello carries
  the sender's advertised endpoint and its live peers, so one seed is enough to learn
  the whole cluster; everyone connects to everyone (a full mesh, as NATS gossips INFO).
* A peer becomes *alive* only when its own hello arrives. A hello asking for a reply is
  answered with a hello, always before anything else, so the receiver knows the sender
  before it reads the sender's scope sync that follows.
* Every alive peer gets a ``ping`` each heartbeat interval. A ping carries a digest of the
  sender's view; a peer whose view differs answers with ``peers`` so views converge.
* The SWIM detector (``swim.py``) watches every alive peer and declares peers dead; its
  messages go on the probe link (``Send.probe``). Anything heard from a peer counts
  as a sign of life for its silence backstop. A ``bye`` removes the sender at once.
* A hello with a new incarnation from a known node id means the node restarted: the old
  incarnation is removed before the new one is added.
* A peer declared dead may only be cut off: its endpoint is redialed with backoff, as
  seeds are, for ``lost_retry_ttl``, so a healed netsplit merges again (both sides then
  exchange full syncs). A peer that said ``bye`` is not redialed.
* Nodes of another scope are never admitted (the envelope carries the scope).

Invariant: ``PeerDown`` is reported exactly once per incarnation that was reported up.
``PeerUp`` is repeated for every hello from a known peer, as pg answers every discover
with a sync: it makes the scope send that peer a fresh full sync.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from zdps.core import swim
from zdps.core.ring import node_set_digest
from zdps.wire.codec import NodeMessage
from zdps.wire.gossip import Bye, Hello, PeerList, Peers, Ping


class PeerState(StrEnum):
    JOINING = "joining"  # learned of, hello sent, no hello heard back yet
    ALIVE = "alive"


@dataclass(slots=True)
class Peer:
    node: str
    endpoint: str
    incarnation: int
    state: PeerState
    since: float
    last_hello: float = 0.0


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` to whatever node listens at ``endpoint``.

    ``probe`` messages (the detector's) take the probe link, so they never wait
    behind data.
    """

    endpoint: str
    message: NodeMessage
    probe: bool = False


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Drop the connection to ``endpoint`` and anything queued on it."""

    endpoint: str


@dataclass(frozen=True, slots=True)
class PeerUp:
    node: str
    endpoint: str


@dataclass(frozen=True, slots=True)
class PeerDown:
    node: str
    reason: str  # "dead", "left" or "restarted"


Action = Send | Disconnect | PeerUp | PeerDown


@dataclass(slots=True)
class MembershipConfig:
    heartbeat_interval: float = 0.2
    join_timeout: float = 2.0
    seed_retry_min: float = 0.25
    seed_retry_max: float = 2.0
    tombstone_ttl: float = 10.0
    lost_retry_ttl: float = 600.0  # how long a peer declared dead is redialed (netsplit heal)


@dataclass(slots=True)
class _Seed:
    """An endpoint to say hello to until someone answers there: a seed or a lost peer."""

    next_try: float = 0.0
    backoff: float = 0.0
    answered_by: str | None = None
    expires: float = math.inf  # seeds are retried forever, lost peers for a while


@dataclass(slots=True)
class Membership:
    """The peer table of one node and the hello/ping/peers/bye protocol."""

    node: str
    incarnation: int
    endpoint: str
    detector: swim.Swim
    seeds: list[str] = field(default_factory=list)
    config: MembershipConfig = field(default_factory=MembershipConfig)
    peers: dict[str, Peer] = field(default_factory=dict)
    _seeds: dict[str, _Seed] = field(default_factory=dict)
    _self_endpoints: set[str] = field(default_factory=set)
    _tombstones: dict[str, tuple[int, float]] = field(default_factory=dict)
    scope_digest: Callable[[], str] | None = None  # the overlay's digest, sent in pings
    _next_ping: float = 0.0
    _leaving: bool = False

    def __post_init__(self) -> None:
        self._self_endpoints.add(self.endpoint)
        self._seeds = {s: _Seed() for s in self.seeds if s != self.endpoint}

    # ------------------------------------------------------------------ views

    def alive(self) -> list[str]:
        """Ids of the peers currently alive (this node excluded)."""
        return [p.node for p in self.peers.values() if p.state is PeerState.ALIVE]

    def endpoint_of(self, node: str) -> str | None:
        peer = self.peers.get(node)
        return peer.endpoint if peer else None

    def is_alive(self, node: str, incarnation: int) -> bool:
        """Whether messages from (node, incarnation) are to be accepted."""
        peer = self.peers.get(node)
        return (
            peer is not None and peer.state is PeerState.ALIVE and peer.incarnation == incarnation
        )

    def view_digest(self) -> str:
        """Identifies the set of live nodes (self included), as the ring digest does."""
        return node_set_digest([*self.alive(), self.node])

    # ------------------------------------------------------------------ events

    def start(self, now: float) -> list[Action]:
        """Say hello to every seed."""
        return self.tick(now)

    def heard(self, node: str, now: float) -> None:
        """An accepted envelope from an alive peer arrived."""
        self.detector.heard(node, now)

    def handle(self, node: str, incarnation: int, message: NodeMessage, now: float) -> list[Action]:
        """Apply a hello, peers, ping, bye or detector message from ``node``."""
        if type(message) is Hello:
            return self._on_hello(node, incarnation, message, now)
        if node == self.node or not self.is_alive(node, incarnation):
            if type(message) is Ping:
                return self._on_stranger_ping(node, incarnation, message, now)
            return []
        if type(message) is Ping:
            if message.view != self.view_digest():
                return [Send(self.peers[node].endpoint, Peers(self._peer_list()))]
            return []
        if type(message) is Peers:
            return self._learn(message.peers, now)
        if type(message) is Bye:
            return self._remove(node, "left", now)
        assert message.PROBE, message
        return self._detected(self.detector.handle(node, message, now), now)

    def tick(self, now: float) -> list[Action]:
        """Timers: pings, hello retries, seed retries, failure detection, tombstones."""
        actions: list[Action] = []
        if self._leaving:
            return actions
        actions += self._detected(self.detector.tick(now), now)
        interval = self.config.heartbeat_interval
        for peer in list(self.peers.values()):
            if peer.state is PeerState.JOINING:
                if now - peer.since > self.config.join_timeout:
                    del self.peers[peer.node]
                    actions.append(Disconnect(peer.endpoint))
                elif now - peer.last_hello >= interval:
                    peer.last_hello = now
                    actions.append(self._hello(peer.endpoint, reply=True))
        if now >= self._next_ping:
            self._next_ping = now + interval
            digest = self.scope_digest() if self.scope_digest is not None else None
            ping = Ping(self.view_digest(), self.endpoint, digest)
            actions += [Send(self.peers[n].endpoint, ping) for n in self.alive()]
        known = {p.endpoint for p in self.peers.values()}
        for endpoint, seed in list(self._seeds.items()):
            if seed.expires < now:
                del self._seeds[endpoint]
                continue
            if endpoint in self._self_endpoints or endpoint in known:
                continue
            if seed.answered_by in self.peers:
                continue
            if now >= seed.next_try:
                if seed.backoff:
                    # A fresh connection per retry: hellos queued for an absent seed
                    # would otherwise all arrive at once when it comes up.
                    actions.append(Disconnect(endpoint))
                seed.backoff = min(
                    max(seed.backoff * 2, self.config.seed_retry_min), self.config.seed_retry_max
                )
                seed.next_try = now + seed.backoff
                actions.append(self._hello(endpoint, reply=True))
        for node, (_, expires) in list(self._tombstones.items()):
            if expires < now:
                del self._tombstones[node]
        return actions

    def next_deadline(self) -> float:
        """The latest time at which ``tick`` must run next."""
        deadline = self._next_ping
        detector = self.detector.next_deadline()
        if detector is not None:
            deadline = min(deadline, detector)
        return deadline

    def leave(self, now: float) -> list[Action]:
        """Graceful leave: tell every alive peer, then stop all protocol activity."""
        self._leaving = True
        return [Send(self.peers[n].endpoint, Bye()) for n in self.alive()]

    # ------------------------------------------------------------------ internals

    def _hello(self, endpoint: str, reply: bool, echo: str | None = None) -> Send:
        return Send(endpoint, Hello(self.endpoint, self._peer_list(), endpoint, reply, echo))

    def _peer_list(self) -> PeerList:
        return {
            p.node: (p.endpoint, p.incarnation)
            for p in self.peers.values()
            if p.state is PeerState.ALIVE
        }

    def _on_hello(self, node: str, incarnation: int, hello: Hello, now: float) -> list[Action]:
        advertise, peers = hello.advertise, hello.peers
        if node == self.node:
            if incarnation == self.incarnation and hello.dialed is not None:
                self._self_endpoints.add(hello.dialed)  # a seed that is this very node
            return []
        if self._leaving:
            return []
        tomb = self._tombstones.get(node)
        if tomb is not None and incarnation < tomb[0]:
            return []  # an older life of a node that already died or left
        echo = hello.echo
        if echo is not None and echo in self._seeds:
            self._seeds[echo].answered_by = node
        actions: list[Action] = []
        peer = self.peers.get(node)
        if peer is not None and peer.state is PeerState.ALIVE and peer.incarnation != incarnation:
            if incarnation < peer.incarnation:
                return []  # a hello from an older life of a restarted node, still in flight
            actions += self._remove(node, "restarted", now)
            peer = None
        if hello.reply:
            actions.append(self._hello(advertise, reply=False, echo=hello.dialed))
        if peer is None or peer.state is PeerState.JOINING:
            if peer is not None and peer.endpoint != advertise:
                actions.append(Disconnect(peer.endpoint))
            self.peers[node] = Peer(node, advertise, incarnation, PeerState.ALIVE, now)
            self._tombstones.pop(node, None)
            self.detector.add(node, incarnation, now)
            actions.append(PeerUp(node, advertise))
        else:
            actions.append(PeerUp(node, advertise))  # known peer: pg answers with a sync again
        actions += self._learn(peers, now)
        return actions

    def _detected(self, actions: list[swim.Action], now: float) -> list[Action]:
        """The detector's messages (to alive peers) and deaths, as membership actions."""
        out: list[Action] = []
        for action in actions:
            if isinstance(action, swim.Dead):
                out += self._remove(action.node, "dead", now)
            elif action.node in self.peers:
                out.append(Send(self.peers[action.node].endpoint, action.message, probe=True))
        return out

    def _on_stranger_ping(
        self, node: str, incarnation: int, ping: Ping, now: float
    ) -> list[Action]:
        """A ping from a node we do not hold as alive: it thinks we are peers, so re-handshake."""
        if node == self.node or ping.endpoint is None or self._leaving:
            return []
        return self._learn({node: (ping.endpoint, incarnation)}, now, gossip=False)

    def _learn(self, peers: PeerList, now: float, gossip: bool = True) -> list[Action]:
        """Peers heard of from someone: say hello to the ones not yet known."""
        actions: list[Action] = []
        for node, (endpoint, incarnation) in peers.items():
            if node == self.node or node in self.peers:
                continue
            tomb = self._tombstones.get(node)
            if (
                gossip
                and tomb is not None
                and isinstance(incarnation, int)
                and incarnation <= tomb[0]
            ):
                continue  # second-hand news of a node we already saw die or leave
            self.peers[node] = Peer(
                node, endpoint, incarnation, PeerState.JOINING, now, last_hello=now
            )
            actions.append(self._hello(endpoint, reply=True))
        return actions

    def _remove(self, node: str, reason: str, now: float) -> list[Action]:
        peer = self.peers.pop(node, None)
        if peer is None:
            return []
        self.detector.remove(node)
        self._tombstones[node] = (peer.incarnation, now + self.config.tombstone_ttl)
        if reason == "dead" and peer.state is PeerState.ALIVE:
            # It may be cut off rather than gone: keep dialing it, so that both sides
            # find each other again when the network heals.
            seed = self._seeds.setdefault(
                peer.endpoint, _Seed(expires=now + self.config.lost_retry_ttl)
            )
            seed.next_try, seed.backoff = now + self.config.seed_retry_min, 0.0
        actions: list[Action] = [Disconnect(peer.endpoint)]
        if peer.state is PeerState.ALIVE:
            actions.insert(0, PeerDown(node, reason))
        return actions
