"""SWIM failure detection with Lifeguard's refinements, as a sans-IO state machine.

A heartbeat timeout alone declares a node dead when it is merely slow, or cut off
from one peer only, and each node decides on its own. SWIM asks other peers before
accusing anyone, lets the accused refute, and spreads the verdict, so a crash is known
everywhere quickly while a busy node survives. Protocol (docs/PROTOCOL.md §4.4):

* Each probe interval one peer is probed (round-robin over a list shuffled each round);
  ``probe`` is answered by ``probe_ack``. Without an ack within ``probe_timeout``, up to
  ``indirect_probes`` other peers get a ``probe_req``: they probe the target and relay
  its ack, or send ``probe_nack`` when they got none.
* No ack by the end of the probe interval: the target is *suspected*. ``suspect`` goes
  to every peer (the accused included, and to it again every probe interval).
* The accused refutes: it raises its ``version`` above the accusation's and sends
  ``alive`` to every peer. A node is identified by (incarnation, version): the
  incarnation is its restart identity, the version counts its refutations. Verdicts
  about another incarnation are ignored, so a new life is never killed by news of an
  old one.
* A suspicion not refuted in time makes the peer dead here, and ``dead`` goes to every
  other peer. The timeout falls from its maximum to its minimum as other peers
  independently suspect the same node (Lifeguard's dynamic suspicion timeout).
* Local health (Lifeguard): missed nacks, refutations and this node's own stalls raise
  a score that stretches its probe timeouts, so a struggling node accuses less.
* A ``tick`` much later than its deadline means this node itself stalled: that time is
  not held against its peers, so in-flight probes get fresh deadlines.
* A peer not heard from at all for ``silence`` is dropped here, without a verdict: a
  link that fails one way is masked by indirect probes, yet loses data. ``silence`` is
  ``silence_timeout``, or longer where pings reach each peer less often (membership.py).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from zdps.core.swim_actions import Action, Dead, Suspected, Tell
from zdps.core.swim_peers import Peer, Suspicion, WatchedPeers
from zdps.wire import probes
from zdps.wire.probes import Alive, Probe, ProbeAck, ProbeNack, ProbeReq, Suspect, Verdict

HEALTH_MAX = 8  # probe timeouts are stretched by 1 to HEALTH_MAX times
EXPECTED_CONFIRMATIONS = 3  # Lifeguard's K: suspicions that bring the timeout to its minimum
NACK_FRACTION = 0.8  # a helper nacks before the asker gives up
HELPER_POOL = 4  # helpers are drawn from this many times as many recently heard peers
VERDICT_FANOUT = 8  # a ``dead`` verdict goes to every peer up to this many, else to this many
COUNTS = ("probes", "indirect", "suspected", "refuted", "stalls")  # shown by ``status``


@dataclass(slots=True)
class SwimConfig:
    """Detector timings, in seconds except the multipliers (see docs/PROTOCOL.md §4.4)."""

    probe_interval: float = 0.2
    probe_timeout: float = 0.1
    indirect_probes: int = 3
    suspicion_mult: float = 3.0  # minimum suspicion: this many probe intervals (times log10 n)
    suspicion_max_mult: float = 4.0  # maximum suspicion: this many minimums
    silence_timeout: float = 2.0


@dataclass(slots=True)
class _Probe:
    target: str
    seq: int
    ask_at: float  # no ack by then: ask helpers
    end: float  # no ack by then: suspect the target
    asked: bool = False
    helpers: int = 0
    nacks: int = 0

    def due(self) -> float:
        return self.end if self.asked else self.ask_at


@dataclass(slots=True)
class _Relay:
    requester: str
    seq: int  # the requester's probe
    deadline: float


class Swim:
    """The failure detector of one node: which alive peers are suspect, and who is dead."""

    def __init__(
        self,
        node: str,
        incarnation: int,
        config: SwimConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.node = node
        self.incarnation = incarnation
        self.config = config or SwimConfig()
        self.rng = rng or random.Random(f"{node}:{incarnation}")
        self.version = 0
        self.health = 0
        self.counts = dict.fromkeys(COUNTS, 0)
        self.silence = self.config.silence_timeout  # membership raises it in large clusters
        self.watched = WatchedPeers()  # kept so that ``next_deadline`` scans no peer
        self.peers = self.watched.peers  # read here, changed through ``watched``
        self._order: list[str] = []
        self._cursor = 0
        self._last_target: str | None = None
        self._probe: _Probe | None = None
        self._next_probe = 0.0
        self._relays: dict[int, _Relay] = {}
        self._seq = 0

    # ------------------------------------------------------------------ views

    def is_suspect(self, node: str) -> bool:
        peer = self.peers.get(node)
        return peer is not None and peer.suspicion is not None

    def next_deadline(self) -> float | None:
        """The earliest time at which ``tick`` has something to do."""
        if not self.peers:
            return None
        probe = self._probe
        deadline = self._next_probe if probe is None else probe.due()
        deadline = min(deadline, self.watched.earliest(self.silence))
        for relay in self._relays.values():
            deadline = min(deadline, relay.deadline)
        return deadline

    # ------------------------------------------------------------------ events

    def add(self, node: str, incarnation: int, now: float) -> None:
        """Watch ``node`` (just reported alive); it is probed within this round."""
        self.remove(node)
        if not self.peers:
            # Give the first peer's hello time to reach it before the first probe does.
            self._next_probe = max(self._next_probe, now + self.config.probe_interval)
        self.watched.add(node, incarnation, now)
        self._order.insert(self.rng.randint(self._cursor, len(self._order)), node)

    def remove(self, node: str) -> None:
        """Stop watching ``node`` (it left, died or restarted)."""
        if not self.watched.remove(node):
            return
        index = self._order.index(node)
        del self._order[index]
        if index < self._cursor:
            self._cursor -= 1
        if self._probe is not None and self._probe.target == node:
            self._probe = None

    def heard(self, node: str, now: float) -> None:
        """Anything at all arrived from ``node``."""
        self.watched.heard(node, now)

    def handle(self, sender: str, message: Any, now: float) -> list[Action]:
        """A detector message (``zdps.wire.probes``) from the alive peer ``sender``."""
        kind = type(message)
        if kind is Probe:
            return [Tell(sender, ProbeAck(message.seq))]
        if kind is ProbeReq:
            return self._on_probe_req(sender, message.seq, message.target, now)
        if kind is ProbeAck:
            return self._on_ack(message.seq)
        if kind is ProbeNack:
            probe = self._probe
            if probe is not None and probe.seq == message.seq:
                probe.nacks += 1
            return []
        node, incarnation, version = message.node, message.inc, message.ver
        if node == self.node:
            accused = kind is not Alive and incarnation == self.incarnation
            return self._refute(version) if accused else []
        peer = self.peers.get(node)
        if peer is None or peer.incarnation != incarnation or version < peer.version:
            return []  # another life of that node, or news older than ours
        if kind is Alive:
            if version > peer.version:
                peer.version = version
                self.watched.suspect(node, None)
            return []
        if kind is Suspect:
            peer.version = version
            return self._suspect(node, sender, now)
        assert kind is probes.Dead, message
        self.remove(node)
        return [Dead(node, f"declared dead by {sender}"), *self._pass_on(message)]

    def tick(self, now: float) -> list[Action]:
        """Timers: probes, helpers, relays, suspicions and silence."""
        due = self.next_deadline()
        if due is not None and now - due > self.config.probe_interval:
            self._stalled(now - due, now)
        actions: list[Action] = []
        probe = self._probe
        if probe is not None and now >= probe.end:
            actions += self._probe_failed(probe, now)
        elif probe is not None and not probe.asked and now >= probe.ask_at:
            actions += self._ask_helpers(probe)
        if self._probe is None and now >= self._next_probe:
            actions += self._start_probe(now)
        for seq, relay in list(self._relays.items()):
            if now >= relay.deadline:
                del self._relays[seq]
                actions.append(Tell(relay.requester, ProbeNack(relay.seq)))
        silent, timed = self.watched.due(now, self.silence)
        if len(silent) > 1:  # several at once (rare): in table order, as a scan had them
            many = set(silent)
            silent = [node for node in self.peers if node in many]
        for node in silent:
            self.remove(node)
            actions.append(Dead(node, f"silent for {self.silence:g} s"))
        for node in timed:
            peer = self.peers.get(node)
            suspicion = peer and peer.suspicion
            if not suspicion:
                continue  # gone silent above
            if now >= suspicion.deadline():
                self.remove(node)
                actions.append(Dead(node, "suspected, not refuted in time"))
                actions += self._spread(probes.Dead(node, peer.incarnation, peer.version))
            elif now >= suspicion.next_tell:
                # Every holder tells the target once (it may have missed a refutation:
                # the target answers any accusation with ``alive``); accusers again.
                interval = self.config.probe_interval
                suspicion.next_tell = now + interval if suspicion.told else math.inf
                self.watched.retime(node)
                actions.append(Tell(node, Suspect(node, peer.incarnation, peer.version)))
        return actions

    # ------------------------------------------------------------------ probing

    def _scale(self) -> int:
        return self.health + 1

    def _add_health(self, delta: int) -> None:
        self.health = min(HEALTH_MAX - 1, max(0, self.health + delta))

    def _next_target(self) -> str | None:
        """Round-robin over the peers, reshuffled each round; never the same one twice running."""
        order = self._order
        if not order:
            return None
        if self._cursor >= len(order):
            self.rng.shuffle(order)
            if len(order) > 1 and order[0] == self._last_target:
                other = self.rng.randrange(1, len(order))
                order[0], order[other] = order[other], order[0]
            self._cursor = 0
        self._last_target = order[self._cursor]
        self._cursor += 1
        return self._last_target

    def _start_probe(self, now: float) -> list[Action]:
        target = self._next_target()
        if target is None:
            return []
        interval = self.config.probe_interval * self._scale()
        self._seq += 1
        self.counts["probes"] += 1
        self._probe = _Probe(
            target, self._seq, now + self.config.probe_timeout * self._scale(), now + interval
        )
        self._next_probe = now + interval
        return [Tell(target, Probe(self._seq))]

    def _ask_helpers(self, probe: _Probe) -> list[Action]:
        probe.asked = True
        self.counts["indirect"] += 1
        # Among the peers heard from last: in a netsplit those are on this side, so they
        # answer (a nack if not an ack), and the missing nacks of helpers cut off with the
        # target do not make this node doubt itself and probe ever slower (local health).
        wanted = self.config.indirect_probes
        candidates = self.watched.recent(HELPER_POOL * wanted, probe.target)
        helpers = self.rng.sample(candidates, min(wanted, len(candidates)))
        probe.helpers = len(helpers)
        request = ProbeReq(probe.seq, probe.target)
        return [Tell(helper, request) for helper in helpers]

    def _probe_failed(self, probe: _Probe, now: float) -> list[Action]:
        """No ack at all: suspect the target; missing nacks mean we may be the problem."""
        self._probe = None
        self._add_health(probe.helpers - probe.nacks if probe.helpers else 1)
        target = self.peers.get(probe.target)
        if target is None:
            return []
        new: list[Action] = [] if target.suspicion else [Suspected(probe.target)]
        return new + self._suspect(probe.target, self.node, now)

    def _on_ack(self, seq: int) -> list[Action]:
        probe = self._probe
        if probe is not None and probe.seq == seq:
            self._probe = None
            self._add_health(-1)
            return []
        relay = self._relays.pop(seq, None)
        if relay is None:
            return []  # late: that probe is over
        return [Tell(relay.requester, ProbeAck(relay.seq))]

    def _on_probe_req(self, sender: str, seq: int, target: str, now: float) -> list[Action]:
        if target not in self.peers:
            return [Tell(sender, ProbeNack(seq))]
        self._seq += 1
        wait = self.config.probe_timeout * NACK_FRACTION
        self._relays[self._seq] = _Relay(sender, seq, now + wait)
        return [Tell(target, Probe(self._seq))]

    def _stalled(self, late: float, now: float) -> None:
        """This node was not running for ``late`` seconds: hold none of it against peers."""
        self.counts["stalls"] += 1
        self._add_health(1)
        probe = self._probe
        if probe is not None:
            probe.ask_at += late
            probe.end += late
        for relay in self._relays.values():
            relay.deadline += late
        self.watched.stalled(late, now)

    # ------------------------------------------------------------------ verdicts

    def _suspect(self, node: str, accuser: str, now: float) -> list[Action]:
        """``accuser`` suspects ``node``: start the suspicion, or count a confirmation."""
        peer = self.peers[node]
        suspicion = peer.suspicion
        if suspicion is None:
            nodes = len(self.peers) + 1
            low = (
                self.config.suspicion_mult
                * self.config.probe_interval
                * max(1.0, math.log10(nodes))
            )
            suspicion = Suspicion(
                started=now,
                expected=min(EXPECTED_CONFIRMATIONS, nodes - 2),
                low=low,
                high=low * self.config.suspicion_max_mult,
                accusers={accuser},
                next_tell=now + self.config.probe_interval,
            )
            self.watched.suspect(node, suspicion)
        elif accuser in suspicion.accusers:
            return []
        else:
            suspicion.accusers.add(accuser)
            suspicion.confirmations += 1
            suspicion.confirmed_at = now
            self.watched.retime(node)
        if accuser != self.node:
            return []
        self.counts["suspected"] += 1
        if suspicion.confirmations > suspicion.expected:
            return []  # enough accusers are known: ours would shorten no one's timeout
        # Our own accusation goes to everyone, so that they count it as a confirmation,
        # and to the target again every probe interval, so that it hears and refutes.
        suspicion.told, suspicion.next_tell = True, now + self.config.probe_interval
        self.watched.retime(node)
        return self._tell_all(Suspect, node, peer)

    def _refute(self, version: int) -> list[Action]:
        """We are accused: outrank the accusation and tell everyone we are alive.

        An accusation older than our version (from a peer that readmitted us and lost
        track) needs no new version, only the news.
        """
        if version >= self.version:
            self.version = version + 1
            self.counts["refuted"] += 1
            self._add_health(1)
        alive = Alive(self.node, self.incarnation, self.version)
        return [Tell(peer, alive) for peer in self.peers]

    def _tell_all(self, kind: type[Verdict], node: str, peer: Peer) -> list[Action]:
        message = kind(node, peer.incarnation, peer.version)
        return [Tell(other, message) for other in self.peers]

    def _spread(self, dead: probes.Dead) -> list[Action]:
        """A ``dead`` verdict of ours: to every peer, or beyond VERDICT_FANOUT peers to
        that many at random, who pass it on (``_pass_on``). Every node that held the
        suspicion times out about when we did and sends its own: to all, that made
        O(N²) messages a death, and a netsplit of 1,000 nodes 250 million."""
        order = self._order
        targets = order if len(order) <= VERDICT_FANOUT else self.rng.sample(order, VERDICT_FANOUT)
        return [Tell(other, dead) for other in targets]

    def _pass_on(self, dead: probes.Dead) -> list[Action]:
        """A ``dead`` verdict that removed a peer here goes on, as an epidemic, in a
        cluster where verdicts do not go to everyone: at most once per node and death."""
        return self._spread(dead) if len(self._order) > VERDICT_FANOUT else []
