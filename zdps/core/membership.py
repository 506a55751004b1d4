"""Cluster membership: who the live peers are, as a sans-IO state machine.

Protocol (docs/PROTOCOL.md, "Membership"):

* A node says ``hello`` to each seed and to every peer it learns of: a full mesh, as
  NATS gossips INFO. Only a hello to a seed carries the sender's peers and asks for
  the receiver's: one seed is enough to learn the cluster, and a join costs two lists.
* A peer becomes *alive* only when its own hello arrives. A hello asking for a reply is
  answered at once, so the receiver knows the sender before the scope sync after it.
* Each heartbeat interval, ``ping_fanout`` alive peers get a ``ping``, in turn (all in a
  cluster no larger: ping_rounds.py). It carries a digest of the sender's view; a peer
  whose view differs answers with ``peers`` so views converge.
* The SWIM detector (``swim.py``) watches every alive peer and declares peers dead, on
  the probe link (``Send.probe``); anything heard from a peer counts as a sign of life
  for its silence backstop. A ``bye`` removes the sender at once.
* A hello with a new incarnation from a known node id: the node restarted.
* A peer declared dead may only be cut off: its endpoint is redialed (as seeds are) for
  ``lost_retry_ttl``, so a healed netsplit merges; meanwhile its probes are acked and
  its accusations of this node refuted. A peer that said ``bye`` is not redialed.
* Nodes of another scope are never admitted; a hello from this node's id elsewhere is
  a ``Clash`` (clashes.py), one of another protocol refused (compatibility.py).
* Suspicions, refutations and readmissions are logged (a peer declared dead is told,
  ``dropped``, in the redialled hellos).

Invariant: ``PeerDown`` is reported exactly once per incarnation that was reported up.
``PeerUp`` is repeated for every hello from a known peer, as pg answers every discover
with a sync: it makes the scope send that peer a fresh full sync.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from zdps.core import swim, swim_actions
from zdps.core.clashes import IdClashes
from zdps.core.compatibility import Compatibility
from zdps.core.log_events import log_event
from zdps.core.membership_actions import Action, Disconnect, PeerDown, PeerUp, Refused, Send
from zdps.core.membership_config import MembershipConfig
from zdps.core.peers import Peer, PeerState, PeerTable
from zdps.core.ping_rounds import PingRounds
from zdps.core.seeds import Seeds
from zdps.wire import probes
from zdps.wire.codec import PROTOCOL_VERSION, NodeMessage
from zdps.wire.errors import E_TOO_MANY_PEERS
from zdps.wire.gossip import Bye, Hello, PeerList, Peers, Ping, SyncPart
from zdps.wire.messages import SPOKEN, incompatibility

CLASH_CHECK = 10.0  # seconds the old endpoint of a peer that moved is checked for its old life
MAX_DECLARED_DEAD = 10_000  # ids of peers declared dead remembered, to know a healed split


@dataclass(slots=True)
class Membership:
    """The peer table of one node and the hello/ping/peers/bye protocol."""

    node: str
    incarnation: int
    endpoint: str
    detector: swim.Swim
    seeds: list[str] = field(default_factory=list)
    config: MembershipConfig = field(default_factory=MembershipConfig)
    peers: PeerTable = field(init=False)
    id_clashes: IdClashes = field(default_factory=IdClashes)  # our id elsewhere (§4.2)
    scope_digest: Callable[[str], str] | None = None  # the overlay's digest for a peer's pings
    dialing: Seeds = field(init=False)
    pinging: PingRounds = field(init=False)
    compat: Compatibility = field(init=False)  # peers that cannot be ours (§11)
    _self_endpoints: set[str] = field(default_factory=set)
    _tombstones: dict[str, tuple[int, float]] = field(default_factory=dict)
    _dropped: dict[str, str] = field(default_factory=dict)  # endpoint: id declared dead there
    _declared_dead: dict[str, int] = field(default_factory=dict)  # id: the life declared dead
    _next_ping: float = 0.0
    _leaving: bool = False

    def __post_init__(self) -> None:
        self.peers = PeerTable(self.node)
        self._self_endpoints.add(self.endpoint)
        config = self.config
        self.dialing = Seeds(self.seeds, config.seed_retry_min, config.seed_retry_max)
        self.pinging = PingRounds(config.ping_fanout, f"{self.node}:{self.incarnation}")
        self.compat = Compatibility(self.endpoint)

    # ------------------------------------------------------------------ views

    def alive(self) -> list[str]:
        """Ids of the peers currently alive (this node excluded): the table's own list,
        to be read, not changed."""
        return self.peers.alive()

    def endpoint_of(self, node: str) -> str | None:
        peer = self.peers.get(node)
        return peer.endpoint if peer else None

    @property
    def clashes(self) -> dict[str, tuple[int, float]]:  # endpoint: (incarnation, when)
        return self.id_clashes.seen

    def node_at(self, endpoint: str) -> str | None:
        """The node expected at ``endpoint`` (a peer, alive or joining, one declared dead
        there, or this node itself), for CURVE's choice of key."""
        known = self._nodes_at()(endpoint, None) or self._dropped.get(endpoint)
        return known or (self.node if endpoint in self.clashes else None)

    def is_alive(self, node: str, incarnation: int) -> bool:
        """Whether messages from (node, incarnation) are to be accepted."""
        peer = self.peers.get(node)
        return (
            peer is not None and peer.state is PeerState.ALIVE and peer.incarnation == incarnation
        )

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
            if message.PROBE and node != self.node:
                return self._on_stranger_probe(node, message, now)
            return []
        if type(message) is Ping:
            if message.view != self.peers.view_digest():
                return [Send(self.peers[node].endpoint, Peers(self.peers.peer_list()))]
            return []
        if type(message) is Peers:
            return self._learn(message.peers, now)
        if type(message) is Bye:
            return self._remove(node, "left", now, "said bye")
        assert message.PROBE, message
        return self._probe_message(node, message, now)

    def tick(self, now: float) -> list[Action]:
        """Timers: pings, hello retries, seed retries, failure detection, tombstones."""
        actions: list[Action] = []
        if self._leaving:
            return actions
        detector = self.detector
        actions += self._detected(detector.tick(now), now)
        interval = self.config.heartbeat_interval
        for peer in self.peers.joining():
            if now - peer.since > self.config.join_timeout:
                del self.peers[peer.node]
                actions.append(Disconnect(peer.endpoint))
            elif now - peer.last_hello >= interval:
                peer.last_hello = now
                actions.append(self._hello(peer.endpoint, reply=True, share=False))
        if now >= self._next_ping:
            self._next_ping = now + interval
            timeout = detector.config.silence_timeout
            detector.silence = self.pinging.silence(len(self.alive()), interval, timeout)
            actions += self.pinging.pings(self.peers, self.endpoint, self.scope_digest)
        node_at = self._nodes_at()
        known = lambda e, by: node_at(e, by) is not None  # noqa: E731
        for endpoint, step in self.dialing.due(now, known):
            if step != "hello":
                actions.append(Disconnect(endpoint))
            if step == "drop":
                self._dropped.pop(endpoint, None)
            else:  # a seed's list is what a new node needs; a redial's side knows ours
                share = endpoint in self.dialing.configured
                actions.append(self._hello(endpoint, reply=True, share=share))
        actions += self.dialing.warnings(now, known)
        tombstones = self._tombstones  # in the order they expire: see _remove
        while tombstones and next(iter(tombstones.values()))[1] < now:
            del tombstones[next(iter(tombstones))]
        return actions

    def seeds_view(self, now: float) -> list[dict]:
        """The configured seeds and what answered there, for ``status``."""
        return self.dialing.view(now, self.node, self._nodes_at())

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

    def _hello(
        self, endpoint: str, reply: bool, share: bool, echo: str | None = None, **proof: Any
    ) -> Send:
        """A hello to ``endpoint``, with our peer list if ``share`` (which asks for the
        receiver's); asking one of a peer declared dead there names it; ``proof``: a
        clash's challenge and answer (clashes.py)."""
        dropped = self._dropped.get(endpoint) if reply else None
        peers = self.peers.peer_list() if share else None
        hello = Hello(
            self.endpoint, peers, endpoint, reply, echo, dropped, PROTOCOL_VERSION, SPOKEN,
            **proof,
        )  # fmt: skip
        return Send(endpoint, hello)

    def _on_hello(self, node: str, incarnation: int, hello: Hello, now: float) -> list[Action]:
        advertise, peers = hello.advertise, hello.peers
        if node == self.node:
            if incarnation == self.incarnation:
                if hello.dialed is not None:
                    self._self_endpoints.add(hello.dialed)  # a seed that is this very node
                return []
            return self._clash(advertise, incarnation, hello, now)
        if self._leaving:
            return []
        if hello.refused is not None:  # it will not have us: it is not our peer either
            return self.compat.refused_by(node, hello) + self._remove(
                node, "refused", now, hello.refused
            )
        if why := incompatibility(hello):
            return self.compat.refuse(node, hello, why, now)
        tomb = self._tombstones.get(node)
        if tomb is not None and incarnation < tomb[0]:
            return []  # an older life of a node that already died or left
        if hello.echo is not None:
            self.dialing.answered(hello.echo, node)
        if node not in self.peers and len(self.peers) >= self.config.max_peers:
            return [self._full(node)]
        actions: list[Action] = []
        peer = self.peers.get(node)
        if peer is not None and peer.state is PeerState.ALIVE and peer.incarnation != incarnation:
            if incarnation < peer.incarnation:
                return []  # a hello from an older life of a restarted node, still in flight
            actions += self._remove(node, "restarted", now, "a new incarnation said hello")
            if peer.endpoint != advertise:
                self.dialing.redial(peer.endpoint, now, CLASH_CHECK)  # does its old life run?
            peer = None
        if hello.reply:
            share = peers is not None  # it asked for our list
            actions.append(self._hello(advertise, reply=False, share=share, echo=hello.dialed))
        if peer is None or peer.state is PeerState.JOINING:
            if peer is not None and peer.endpoint != advertise:
                actions.append(Disconnect(peer.endpoint))
            self.peers[node] = Peer(node, advertise, incarnation, PeerState.ALIVE, now)
            self._tombstones.pop(node, None)
            self._dropped.pop(advertise, None)
            self.detector.add(node, incarnation, now)
            healed = self._declared_dead.pop(node, None) == incarnation
        else:
            healed = False
            if hello.dropped == self.node:  # it had declared us dead; we held it alive
                actions.append(log_event("readmitted", "warning", every=1.0, by=node))
        # For a known peer too: pg answers with a sync.
        parts = hello.kinds is not None and SyncPart.KIND in hello.kinds
        actions.append(PeerUp(node, advertise, healed, parts))
        if peers is not None:
            actions += self._learn(peers, now)
        return actions

    def _clash(self, endpoint: str, incarnation: int, hello: Hello, now: float) -> list[Action]:
        """Another process calls itself this node (or an old life of it, still in flight):
        answered, so that it learns of it too, and asked to prove it (clashes.py)."""
        if endpoint == self.endpoint and incarnation < self.incarnation:
            return []  # our own earlier life, at our own endpoint
        clash, answer = self.id_clashes.on_hello(endpoint, incarnation, hello, now)
        actions: list[Action] = [clash] if clash is not None else []
        if answer is not None:
            actions.append(self._hello(endpoint, share=True, **answer))
        return actions

    def _probe_message(self, sender: str, message: NodeMessage, now: float) -> list[Action]:
        """A detector message; what it changes in suspicions is told to the operator."""
        detector = self.detector
        about = getattr(message, "node", None)  # verdicts name the node they are about
        suspected = about is not None and detector.is_suspect(about)
        version = detector.version
        actions = self._detected(detector.handle(sender, message, now), now)
        if about is None:
            return actions
        if about == self.node:
            if detector.version != version:  # accused, and refuted with a new version
                kind = "dead" if type(message) is probes.Dead else "suspect"
                refuted = detector.version
                actions.append(
                    log_event("accused", "warning", by=sender, verdict=kind, refuted=refuted)
                )
        elif detector.is_suspect(about) and not suspected:
            actions.append(log_event("suspect", "warning", node=about, by=sender))
        elif suspected and about in detector.peers and not detector.is_suspect(about):
            actions.append(log_event("suspicion_refuted", node=about, version=message.ver))
        return actions

    def _detected(self, actions: list[swim_actions.Action], now: float) -> list[Action]:
        """The detector's messages (to alive peers), deaths and own suspicions."""
        out: list[Action] = []
        for action in actions:
            if isinstance(action, swim_actions.Dead):
                out += self._remove(action.node, "dead", now, action.why)
            elif isinstance(action, swim_actions.Suspected):
                out.append(log_event("suspect", "warning", node=action.node, by=self.node))
            elif action.node in self.peers:
                out.append(Send(self.peers[action.node].endpoint, action.message, probe=True))
        return out

    def _on_stranger_probe(self, node: str, message: NodeMessage, now: float) -> list[Action]:
        """A probe, or an accusation of this node, from a node not alive here (after a
        heal: one not readmitted yet). Unanswered, they become a suspicion and a death
        (docs/PROTOCOL.md §4.4): acked, or refuted, where it joins or was declared dead."""
        peer = self.peers.get(node)
        dropped = (e for e, dead in self._dropped.items() if dead == node)
        endpoint = peer.endpoint if peer is not None else next(dropped, None)
        if endpoint is not None and type(message) is probes.Probe:
            return [Send(endpoint, probes.ProbeAck(message.seq), probe=True)]
        accused = type(message) in (probes.Suspect, probes.Dead) and message.node == self.node
        if endpoint is not None and accused:  # refuted to every alive peer, and the accuser
            actions = self._probe_message(node, message, now)
            alive = probes.Alive(self.node, self.incarnation, self.detector.version)
            return [*actions, Send(endpoint, alive, probe=True)]
        return []

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
            if node == self.node:
                if endpoint not in self._self_endpoints and endpoint not in self.clashes:
                    # Another process with our id, or news of an old life of ours: if one
                    # runs there, its answer tells (``_clash``).
                    challenge = self.id_clashes.challenge(endpoint)
                    hello = self._hello(endpoint, reply=True, share=True, challenge=challenge)
                    actions.append(hello)
                continue
            if node in self.peers:
                continue
            tomb = self._tombstones.get(node)
            if (
                gossip
                and tomb is not None
                and isinstance(incarnation, int)
                and incarnation <= tomb[0]
            ):
                continue  # second-hand news of a node we already saw die or leave
            if len(self.peers) >= self.config.max_peers:
                actions.append(self._full(node))
                continue
            self.peers[node] = Peer(
                node, endpoint, incarnation, PeerState.JOINING, now, last_hello=now
            )
            actions.append(self._hello(endpoint, reply=True, share=False))
        return actions

    def _full(self, node: str) -> Refused:
        return Refused(E_TOO_MANY_PEERS, f"not admitting {node!r}: {self.config.max_peers} peers")

    def _remove(self, node: str, reason: str, now: float, why: str) -> list[Action]:
        peer = self.peers.pop(node, None)
        if peer is None:
            return []
        self.detector.remove(node)
        self._tombstones.pop(node, None)  # the newest goes last, to keep the expiry order
        self._tombstones[node] = (peer.incarnation, now + self.config.tombstone_ttl)
        if reason == "dead" and peer.state is PeerState.ALIVE:
            # It may be cut off rather than gone: keep dialing it, so that both sides
            # find each other again when the network heals.
            self.dialing.redial(peer.endpoint, now, self.config.lost_retry_ttl)
            self._dropped[peer.endpoint] = node
            if len(self._declared_dead) > MAX_DECLARED_DEAD:
                self._declared_dead.clear()  # only those that come back matter
            self._declared_dead[node] = peer.incarnation
        actions: list[Action] = [Disconnect(peer.endpoint)]
        if peer.state is PeerState.ALIVE:
            actions.insert(0, PeerDown(node, reason, why))
        return actions

    def _nodes_at(self) -> Callable[[str, str | None], str | None]:
        """(endpoint, node that answered a hello there) -> the node known there, if any."""
        peers, selves, me = self.peers, self._self_endpoints, self.node
        return lambda endpoint, answered_by: (
            me
            if endpoint in selves
            else peers.by_endpoint().get(endpoint)
            or (answered_by if answered_by in peers else None)
        )
