"""Durable consumers on the simulated cluster: the helpers and the trace checker that
tests/core/test_consumers.py, test_consumer_churn.py and test_consumer_schedules.py share.

A ``World`` is a cluster with one consumer (``NAME``) of one topic, its members (client
connections that sent ``consume``) and a ``trace``: every ``cmsg`` entry a member got
(``Push``), every verdict a member sent (``Said``), every member gone (``Gone``), every
dead letter (``Dead``) and the moments nothing was in flight (``Quiet``), in the order
they happened. ``check`` replays a trace against the protocol rules of §8.6.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.core.node_net import SimNet, mesh
from zdps.core.ring import HashRing
from zdps.core.tunables import CoreConfig
from zdps.wire import LEVEL_OWNER, encode_api
from zdps.wire.api import API_REPLY
from zdps.wire.consumers import (
    ACK,
    API_CONSUMER_ACK,
    API_CONSUMER_MSG,
    NAK,
)

NODES = ("a", "b", "c")
NAME = "w"
EPSILON = 1e-9
Position = tuple[int, int]


# ---------------------------------------------------------------- plain helpers


def topic_owned_by(owner: str, nodes: tuple[str, ...] = NODES) -> str:
    ring = HashRing(nodes)
    return next(f"work-{i}" for i in range(10_000) if ring.owner(f"work-{i}") == owner)


def cluster(history: int = 1000) -> SimNet:
    return mesh(NODES, CoreConfig(history=history))


def ask(net: SimNet, node: str, op: str, client: bytes = b"admin", **args) -> tuple[bool, object]:
    ref = net.request(node, op, args, client)
    net.run_until_quiet()
    frames = net.client_frames.get((node, client), [])
    return next((f[2], f[3]) for _, f in frames if f[0] == API_REPLY and f[1] == ref)


def got(net: SimNet, node: str, member: bytes) -> list[tuple[int, int, int, bytes]]:
    """(epoch, seq, deliveries, payload) of every message pushed to ``member``."""
    frames = net.client_frames.get((node, member), [])
    return [(m[2], m[3], m[4], m[5]) for _, f in frames if f[0] == API_CONSUMER_MSG for m in f[1]]


def verdict(net: SimNet, node: str, member: bytes, topic: str, entries: list, how: int) -> None:
    cack = [[topic, NAME, epoch, seq, how] for epoch, seq, *_ in entries]
    net.client_frame(node, encode_api(API_CONSUMER_ACK, cack), member)
    net.run_until_quiet()


def publish(net: SimNet, topic: str, count: int, at: str = "b") -> None:
    for i in range(count):
        net.publish_run(at, topic, [b"job %d" % i], LEVEL_OWNER)
    net.run_until_quiet()


# ---------------------------------------------------------------- the trace


@dataclass(frozen=True, slots=True)
class Push:
    """A ``cmsg`` entry ``member`` of ``node`` got."""

    time: float
    node: str
    member: bytes
    payload: bytes
    position: Position
    deliveries: int


@dataclass(frozen=True, slots=True)
class Said:
    """A verdict ``member`` sent."""

    time: float
    member: bytes
    payload: bytes
    how: int
    deliveries: int = 1  # the count of the delivery it answers


@dataclass(frozen=True, slots=True)
class Gone:
    """``member``'s connection went away (its client closed it, or its node died)."""

    time: float
    member: bytes


@dataclass(frozen=True, slots=True)
class Dead:
    """The message came out on the dead-letter topic."""

    time: float
    payload: bytes


@dataclass(frozen=True, slots=True)
class Quiet:
    """Nothing in flight: the trace shows all the owner did."""

    time: float


Event = Push | Said | Gone | Dead | Quiet


class Broken(AssertionError):
    """A trace broke a rule of §8.6."""


@dataclass(slots=True)
class Fate:
    """One message as the trace shows it."""

    last: Push | None = None
    nakked: bool = False  # by the member that holds it, since its last delivery
    end: int | None = None  # ACK, TERM, or DEAD
    position: Position | None = None


DEAD = -1


@dataclass(slots=True)
class Summary:
    """What a replayed trace ended with: each message's fate, and verdicts that counted."""

    fates: dict[bytes, Fate] = field(default_factory=dict)
    nakked: int = 0  # naks of a pending message's last delivery (the owner counts them)
    skipped: int = 0  # deliveries made that nobody got (their node had no member left)

    def ended(self, how: int) -> set[bytes]:
        return {p for p, fate in self.fates.items() if fate.end == how}


def check(trace: list[Event], ack_wait: float, max_deliver: int, max_pending: int) -> Summary:
    """Replay ``trace``; ``Broken`` at the first rule it breaks. Verdicts are taken to
    reach the owner before anything after them in the trace (no faults, nothing lost)."""
    summary = Summary()
    gone: set[bytes] = set()
    for event in trace:
        if isinstance(event, Gone):
            gone.add(event.member)
            continue
        if isinstance(event, Quiet):
            out = [p for p, f in summary.fates.items() if f.last is not None and f.end is None]
            if len(out) > max_pending:
                raise Broken(f"at {event.time}: {len(out)} pending, over {max_pending}")
            continue
        fate = summary.fates.setdefault(event.payload, Fate())
        if isinstance(event, Push):
            before = fate.last.deliveries if fate.last else 0
            summary.skipped += event.deliveries - before - 1
            _pushed(event, fate, gone, ack_wait, max_deliver)
        elif isinstance(event, Said):
            if fate.last is None:
                raise Broken(f"{event}: a verdict on a message nobody got")
            if fate.end is None:
                if event.how != NAK:
                    fate.end = event.how
                elif event.deliveries == fate.last.deliveries:  # else late: ignored
                    summary.nakked += 1
                    fate.nakked |= event.member == fate.last.member
        else:
            if fate.end is not None:
                raise Broken(f"{event}: dead-lettered, but it ended already ({fate.end})")
            if fate.last is not None and not _due(fate, event.time, ack_wait):
                raise Broken(f"{event}: dead-lettered before its last delivery was due")
            fate.end = DEAD
    return summary


def _pushed(push: Push, fate: Fate, gone: set[bytes], ack_wait: float, max_deliver: int) -> None:
    if push.member in gone:
        raise Broken(f"{push}: pushed to a member that left")
    if fate.end is not None:
        raise Broken(f"{push}: delivered again after it ended ({fate.end})")
    if fate.position not in (None, push.position):
        raise Broken(f"{push}: the message was at {fate.position}")
    if not 1 <= push.deliveries <= max_deliver:
        raise Broken(f"{push}: deliveries not within 1..{max_deliver}")
    last = fate.last
    if last is not None:
        if push.deliveries <= last.deliveries:
            raise Broken(f"{push}: a redelivery not flagged above {last.deliveries}")
        if not _due(fate, push.time, ack_wait):
            raise Broken(f"{push}: delivered again while {last.member!r} held it since {last.time}")
    fate.last, fate.nakked, fate.position = push, False, push.position


def _due(fate: Fate, now: float, ack_wait: float) -> bool:
    """May the message go again (or die) now: its holder nakked it, or ack_wait passed?"""
    assert fate.last is not None
    return fate.nakked or now >= fate.last.time + ack_wait - EPSILON


def flag_check(trace: list[Event]) -> dict[bytes, list[Push]]:
    """The rules that hold whatever faults happen (verdicts may be lost, owners may
    change): every delivery after a message's first is flagged (deliveries > 1), a
    message is always at one position, and no member gets anything after it left.
    Returns each message's deliveries."""
    pushes: dict[bytes, list[Push]] = {}
    gone: set[bytes] = set()
    for event in trace:
        if isinstance(event, Gone):
            gone.add(event.member)
        elif isinstance(event, Push):
            if event.member in gone:
                raise Broken(f"{event}: pushed to a member that left")
            before = pushes.setdefault(event.payload, [])
            if before and event.deliveries < 2:
                raise Broken(f"{event}: a redelivery not flagged (first: {before[0]})")
            if before and before[0].position != event.position:
                raise Broken(f"{event}: the message was at {before[0].position}")
            before.append(event)
    return pushes


# ---------------------------------------------------------------- the world


@dataclass
class World:
    """A cluster, one consumer of ``topic`` and its members, and the trace of it all."""

    net: SimNet
    topic: str
    dead_at: str  # the node subscribed to the dead-letter topic
    members: dict[bytes, str] = field(default_factory=dict)  # live member -> its node
    held: dict[bytes, list[bytes]] = field(default_factory=dict)  # member -> payloads
    trace: list[Event] = field(default_factory=list)
    published: dict[bytes, tuple[str, int]] = field(default_factory=dict)  # -> (node, ref)
    positions: dict[bytes, Position] = field(default_factory=dict)
    delivered: dict[tuple[bytes, bytes], int] = field(default_factory=dict)  # the count it got
    _frames: dict[tuple[str, bytes], int] = field(default_factory=dict)  # frames seen
    _dead_seen: int = 0
    _count: int = 0

    @property
    def dead_topic(self) -> str:
        return f"{self.topic}.{NAME}.dead"

    def create(self, at: str, **settings) -> dict:
        """The consumer, asked for at node ``at``; its info."""
        self.net.subscribe(self.dead_at, self.dead_topic.encode() + b"\x00")
        ok, info = ask(self.net, at, "consumer_create", topic=self.topic, name=NAME, **settings)
        assert ok, info
        return info  # type: ignore[return-value]

    def info(self, at: str | None = None) -> dict:
        """The consumer's info from the topic's owner (as ``at`` routes the request)."""
        at = at or self.net.running()[0]
        ok, info = ask(self.net, at, "consumer_info", topic=self.topic, name=NAME)
        assert ok, info
        return info  # type: ignore[return-value]

    # -------------------------------------------------------------- what clients do

    def consume(self, node: str, quiet: bool = True) -> bytes:
        """A new member at ``node``."""
        self._count += 1
        member = b"m%d" % self._count
        self.members[member] = node
        self.held[member] = []
        self.net.request(node, "consume", {"topic": self.topic, "name": NAME}, member)
        self.collect(quiet)
        return member

    def leave(self, member: bytes, quiet: bool = True) -> None:
        """``member``'s connection goes away, as a failed send tells the daemon."""
        node = self.members.pop(member)
        self.trace.append(Gone(self.net.clock, member))
        self.net.client_gone(node, member)
        self.collect(quiet)

    def node_down(self, node: str) -> None:
        """``node`` stopped: its members are gone with it."""
        for member in [m for m, n in self.members.items() if n == node]:
            del self.members[member]
            self.trace.append(Gone(self.net.clock, member))

    def publish(self, node: str, level: int = LEVEL_OWNER, quiet: bool = True) -> bytes:
        """A client of ``node`` publishes one message, its payload unique."""
        payload = b"job %d" % len(self.published)
        ref = self.net.publish_run(node, self.topic, [payload], level)
        self.published[payload] = (node, ref)
        self.collect(quiet)
        return payload

    def say(self, member: bytes, payload: bytes, how: int) -> None:
        """``member`` answers ``how`` on ``payload`` (which it got); runs until quiet
        before (what the owner did already shows first) and after."""
        self.collect()
        self.held[member].remove(payload)
        deliveries = self.delivered[member, payload]
        self.trace.append(Said(self.net.clock, member, payload, how, deliveries))
        epoch, seq = self.positions[payload]
        cack = [[self.topic, NAME, epoch, seq, how, deliveries]]
        self.net.client_frame(self.members[member], encode_api(API_CONSUMER_ACK, cack), member)
        self.collect()

    def ack_all(self) -> int:
        """Every live member acks all it holds; how many acks that was."""
        acks = [(m, p) for m in sorted(self.members) for p in list(self.held[m])]
        for member, payload in acks:
            self.say(member, payload, ACK)
        return len(acks)

    def advance(self, seconds: float, quiet_instants: bool = True) -> None:
        """Let time pass; with zero latency every instant ends with nothing in flight."""
        self.net.advance(seconds)
        self.collect(quiet=True, instants=quiet_instants)

    # -------------------------------------------------------------- observing

    def collect(self, quiet: bool = True, instants: bool = False) -> None:
        """Append what members got and the dead letters since the last call, in time
        order; ``quiet``: run until nothing is in flight first, and mark it."""
        if quiet:
            self.net.run_until_quiet()
        new: list[Event] = []
        for (node, member), frames in self.net.client_frames.items():
            if not member.startswith(b"m"):
                continue
            seen = self._frames.get((node, member), 0)
            self._frames[node, member] = len(frames)
            for time, frame in frames[seen:]:
                if frame[0] == API_CONSUMER_MSG:
                    for _, _, epoch, seq, deliveries, payload in frame[1]:
                        new.append(Push(time, node, member, payload, (epoch, seq), deliveries))
        letters, dead = self.net.deliveries[self.dead_at], self.dead_topic
        new += [Dead(d.time, d.payload) for d in letters[self._dead_seen :] if d.topic == dead]
        self._dead_seen = len(letters)
        new.sort(key=lambda e: (e.time, isinstance(e, Dead)))
        for i, event in enumerate(new):
            self.trace.append(event)
            if isinstance(event, Push):
                self.positions[event.payload] = event.position
                self.delivered[event.member, event.payload] = event.deliveries
                held = self.held.get(event.member)
                if held is not None and event.payload not in held:
                    held.append(event.payload)
            if instants and i + 1 < len(new) and new[i + 1].time > event.time:
                self.trace.append(Quiet(event.time))  # the end of an instant
        if quiet:
            self.trace.append(Quiet(self.net.clock))

    def drain(self, rounds: int, wait: float) -> dict:
        """Members ack all they get until the consumer has nothing pending and its cursor
        is at the newest message; its info then."""
        for _ in range(rounds):
            self.ack_all()
            info = self.info()
            owner = self.net.owner(self.topic)
            newest = self.net.core(owner).history.newest(self.topic)  # type: ignore[arg-type]
            if info["pending"] == 0 and tuple(info["cursor"]) == newest:
                return info
            self.advance(wait)
        raise AssertionError(f"the consumer never drained: {self.info()}")
