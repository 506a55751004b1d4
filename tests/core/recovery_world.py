"""The world of a recovery schedule (test_recovery_schedules.py): the simulated cluster,
subscribers running the real ``Recovery`` as the Python clients do, and the books.

A ``Subscriber`` reads its node's deliveries every ``SLICE`` of simulated time and
feeds them to ``zdps.client.recovery.Recovery``; a ``Fetch`` is carried out with the
clients' own steps (``recovering``): ``history`` requests through the subscriber's
node, page by page, retries and the re-check of gaps, each reply awaited for at most
the clients' request timeout. ``World`` applies the schedule's operations (publishes,
each a batch of one or more messages to one topic, partitions, heals, crashes,
leaves, restarts) and knows when a node may fail next.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field

from tests.core.helpers import matches
from tests.core.node_net import SimNet
from zdps.client.protocol import Message
from zdps.client.recovery import Fetch, Gap, Recovery, recovering
from zdps.client.steps import Request, Sleep
from zdps.wire import API_REPLY
from zdps.wire.api import publish_entry

CLIENT_TIMEOUT = 10.0  # the Python clients' request timeout
SLICE = 0.05  # subscribers read their node's deliveries this often (simulated seconds)
REJOIN = 2.0  # seconds a restarted node takes to rejoin and get its copies handed back
PUB = b"pub"


@dataclass
class Subscriber:
    """One subscription at ``node``: its deliveries through ``Recovery``, the recovery's
    steps (``recovering``, as the Python clients run them) carried out in sim time."""

    name: bytes
    node: str
    group: bytes
    recovery: Recovery = field(default_factory=Recovery)
    out: list = field(default_factory=list)  # (time, Message | Gap)
    pos: int = 0  # deliveries of the node already read
    replies_read: int = 0
    steps: Generator | None = None  # the recovery under way
    waiting: tuple = ()  # ("reply", ref, deadline) or ("sleep", until)
    fetches: int = 0
    failed_requests: int = 0
    lost_node: bool = False  # its node went down at some point

    def pump(self, net: SimNet) -> None:
        """Do what the client would have done by now."""
        while True:
            if self.steps is not None:
                if not self._waited(net):
                    return
                continue
            deliveries = net.deliveries[self.node]
            if self.pos >= len(deliveries):
                return
            d = deliveries[self.pos]
            self.pos += 1
            if not matches(self.group, d.topic) or "type" in d.header:
                continue
            msg = Message(d.topic, d.header["seq"], d.header["epoch"], d.payload)
            outcome = self.recovery.live(msg)
            if isinstance(outcome, Fetch):
                self.fetches += 1
                self.steps = recovering(self.recovery, msg, outcome)
                self._step(net, next)
            else:
                self._deliver(net, outcome)

    def _deliver(self, net: SimNet, items: list) -> None:
        self.out += [(net.clock, item) for item in items]

    def _step(self, net: SimNet, resume: Callable[[Generator], Request | Sleep]) -> None:
        """Resume the recovery; start what its next step asks for."""
        try:
            step = resume(self.steps)
            while isinstance(step, Request) and net.nodes[self.node].core is None:
                self.failed_requests += 1
                step = self.steps.send(None)  # no node to ask
        except StopIteration as done:
            self.steps = None
            self._deliver(net, done.value)
            return
        if isinstance(step, Request):
            ref = net.request(self.node, "history", step.op.args(), client=self.name)
            self.waiting = ("reply", ref, net.clock + CLIENT_TIMEOUT)
        else:
            self.waiting = ("sleep", net.clock + step.seconds)

    def _waited(self, net: SimNet) -> bool:
        """Whether what the recovery waits for happened (and it moved on)."""
        if self.waiting[0] == "sleep":
            if net.clock < self.waiting[1]:
                return False
            self._step(net, next)
            return True
        _, ref, deadline = self.waiting
        reply = None
        frames = net.client_frames.get((self.node, self.name), [])
        while self.replies_read < len(frames):
            _, (kind, *fields) = frames[self.replies_read]
            self.replies_read += 1
            if kind == API_REPLY and fields[0] == ref:
                reply = fields
        if reply is None and net.clock < deadline and net.nodes[self.node].core is not None:
            return False
        answer = reply[2] if reply is not None and reply[1] else None
        self.failed_requests += answer is None
        self._step(net, lambda steps: steps.send(answer))
        return True

    def messages(self) -> list[Message]:
        return [item for _, item in self.out if isinstance(item, Message)]

    def gaps(self) -> list[Gap]:
        return [item for _, item in self.out if isinstance(item, Gap)]


@dataclass
class World:
    """The simulated cluster, its subscribers and the publishers' books."""

    net: SimNet
    names: list[str]
    subscribers: list[Subscriber]
    # payload -> (entry node, topic, ref, level), one per message
    published: dict[bytes, tuple[str, str, int, int]] = field(default_factory=dict)
    stopped: set[str] = field(default_factory=set)
    # Restarted nodes until they got their copies back (REJOIN after they can reach the
    # others: None while a split is on, as their seeds may be out of reach).
    rejoined_at: dict[str, float | None] = field(default_factory=dict)
    split_since: float | None = None
    log: list[str] = field(default_factory=list)  # the schedule as run, for reproductions

    def note(self, what: str) -> None:
        self.log.append(f"{self.net.clock:.2f} {what}")

    def advance(self, seconds: float) -> None:
        """Let time pass in slices, subscribers reading after each."""
        until = self.net.clock + seconds
        while self.net.clock < until:
            self.net.advance(min(SLICE, until - self.net.clock))
            for sub in self.subscribers:
                sub.pump(self.net)

    def publish(self, node: str, topic: str, level: int, count: int = 1) -> None:
        """One batch of ``count`` messages to ``topic`` (refs ``ref`` to ``ref+count-1``)."""
        payloads = [b"%s#%d" % (topic.encode(), len(self.published) + i) for i in range(count)]
        refs = [self.net.ref() for _ in payloads]
        assert refs == list(range(refs[0], refs[0] + count))  # a batch's refs
        entry = publish_entry(refs[0], topic, payloads, level)
        self.net.publish_batch(node, [entry], client=PUB)
        for ref, payload in zip(refs, payloads, strict=True):
            self.published[payload] = (node, topic, ref, level)
        names = ", ".join(p.decode() for p in payloads)
        self.note(f"publish {names} at {node} level {level}")

    def partition(self, parts: list[list[str]]) -> None:
        for i, side in enumerate(parts):
            for other in parts[i + 1 :]:
                for a in side:
                    for b in other:
                        self.net.cut(a, b)
        self.split_since = self.net.clock
        self.note(f"partition {parts}")

    def heal(self) -> None:
        self.net.heal()
        self.note("heal")
        self.split_since = None
        for node, at in self.rejoined_at.items():
            if at is None:
                self.rejoined_at[node] = self.net.clock + REJOIN

    def intact(self) -> bool:
        """No node down and none still missing its copies: one more may fail.

        The guarantee is for any single failure; a node restarted during a split, whose
        seeds are on the other side, holds no copies until the split heals.
        """
        clock = self.net.clock
        return not self.stopped and all(
            at is not None and at <= clock for at in self.rejoined_at.values()
        )

    def stop(self, node: str, how: str) -> None:
        (self.net.crash if how == "crash" else self.net.leave)(node)
        self.stopped.add(node)
        self.note(f"{how} {node}")
        for sub in self.subscribers:
            if sub.node == node:
                sub.lost_node = True

    def restart(self, node: str, seed: str) -> None:
        self.net.restart(node, [seed])
        self.stopped.discard(node)
        self.rejoined_at[node] = None if self.split_since is not None else self.net.clock + REJOIN
        self.note(f"restart {node}")
        for sub in self.subscribers:
            if sub.node == node:  # the client's SUB resubscribes on reconnect
                self.net.subscribe(node, sub.group)
