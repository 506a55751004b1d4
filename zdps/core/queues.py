"""Queue groups (NATS's): each message of a topic to one member of each queue group.

A member is one client connection (a DEALER of its own) that asked ``queue_join`` for a
queue group on a topic or prefix. Its node counts its members in the scope overlay under
the group's queue key (``zdps.topics.queue_key``), so every node knows how many members
each node has (``Interest.queues``). The topic's owner, which sequences every batch,
sends each batch to one node per queue group, in turn and in proportion to the node's
members (a ``queued`` entry, or straight to its own members); that node splits the batch
among its members, one contiguous share each, starting with the next in turn, and pushes
each share on the member's connection (``msg`` frames, docs/PROTOCOL.md §8.5). A share
its member cannot take (the connection is gone, or its queue is full) goes to the
node's next member; with none left it is lost and counted (``queue_undelivered``).

At most once: a share pushed to a member that dies before reading it is lost
(docs/FAILURES.md). A join or leave changes the counts at once, and the owner's next
batch follows them; a node that goes down takes its members with it (overlay).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from zdps.core.flow import FlowControl
from zdps.core.outbox import Outbox
from zdps.core.overlay import Overlay
from zdps.core.part import Part
from zdps.topics import matches, parse_queue_key
from zdps.wire.api import API_QUEUED, QueueJoin
from zdps.wire.batches import pack_batch, unpack_batch
from zdps.wire.data import Queued
from zdps.wire.errors import E_TOO_MANY_GROUPS, ProtocolError

MAX_TURNS = 100_000  # queue groups whose turn the owner remembers; beyond, it starts over


@dataclass(frozen=True, slots=True)
class QueueTarget:
    """A queue group a topic's publishes reach: ``nodes[i]`` has the members counted
    from ``bounds[i - 1]`` (0 for the first) up to ``bounds[i]``."""

    key: bytes
    nodes: tuple[str, ...]
    bounds: tuple[int, ...]

    def node(self, turn: int) -> str:
        """The node whose turn ``turn`` is: each node as often as it has members."""
        return self.nodes[bisect_right(self.bounds, turn % self.bounds[-1])]


def queues_of(overlay: Overlay, topic: bytes) -> Iterator[tuple[bytes, bytes]]:
    """``(name, key)`` of every queue group a publish to ``topic`` reaches, by key."""
    for key in sorted(overlay.queue_keys):
        parsed = parse_queue_key(key)
        if parsed is not None and matches(parsed[1], topic):
            yield parsed[0], key


def queue_target(key: bytes, members: dict[str, int]) -> QueueTarget:
    """The target of queue group ``key`` with ``members`` (node -> count, none 0)."""
    nodes = tuple(sorted(members))
    bounds, total = [], 0
    for node in nodes:
        total += members[node]
        bounds.append(total)
    return QueueTarget(key, nodes, tuple(bounds))


@dataclass(slots=True)
class QueueGroups(Part):
    """This node's members of queue groups, and the owner's turns among nodes."""

    node: str
    overlay: Overlay
    apply: Callable[[list, Outbox], None]  # carries out the overlay's actions (groups.py)
    endpoint_of: Callable[[str], str | None]
    flow: FlowControl
    counters: dict[str, int]
    bad_input: Callable[[str, str], None]
    max_groups: int
    _members: dict[bytes, list[bytes]] = field(default_factory=dict)  # key -> connections
    _joined: dict[bytes, set[bytes]] = field(default_factory=dict)  # connection -> keys
    _turns: dict[bytes, int] = field(default_factory=dict)  # key -> batches sent to nodes
    _shares: dict[bytes, int] = field(default_factory=dict)  # key -> batches shared out here

    # ------------------------------------------------------------------ members

    def join(self, client: bytes, ref: int, op: QueueJoin, _now: float, out: Outbox) -> None:
        """``queue_join``: ``client`` becomes a member (again: nothing changes)."""
        if self.add(client, op.key, out):
            out.reply(client, ref, True)
        else:
            why = f"queue group {op.queue!r}: already {self.max_groups} groups here"
            self.bad_input(E_TOO_MANY_GROUPS, why)
            out.fail(client, ref, E_TOO_MANY_GROUPS, why)

    def add(self, client: bytes, key: bytes, out: Outbox) -> bool:
        """``client`` is a member of ``key`` (a queue group's, or a consumer's); False
        if that would be a group over ``max_groups``."""
        members = self._members.get(key)
        if members is None:
            if self.overlay.local_groups >= self.max_groups:
                return False
            members = self._members[key] = []
        if client not in members:
            members.append(client)
            self._joined.setdefault(client, set()).add(key)
            self.apply(self.overlay.join(key), out)
        return True

    def leave(self, client: bytes, ref: int, op: QueueJoin, _now: float, out: Outbox) -> None:
        """``queue_leave``: True if ``client`` was a member."""
        key = op.key
        was = key in self._joined.get(client, ())
        if was:
            self._joined[client].discard(key)
            if not self._joined[client]:
                del self._joined[client]
            self._drop(client, key, out)
        out.reply(client, ref, was)

    def client_gone(self, client: bytes, out: Outbox) -> None:
        """A connection vanished: it is a member of nothing any more."""
        for key in self._joined.pop(client, ()):
            self._drop(client, key, out)

    def _drop(self, client: bytes, key: bytes, out: Outbox) -> None:
        members = self._members[key]
        members.remove(client)
        if not members:
            del self._members[key]
            self._shares.pop(key, None)
        self.apply(self.overlay.leave(key), out)

    def local(self) -> dict[bytes, int]:
        """Members here per queue key (what ``status`` shows)."""
        return {key: len(members) for key, members in self._members.items()}

    # ------------------------------------------------------------------ the owner

    def dispatch(
        self,
        topic: str,
        seq: int,
        epoch: int,
        n: int,
        batch: bytes,
        targets: list[QueueTarget],
        out: Outbox,
    ) -> None:
        """Send a sequenced batch to one node of each queue group, the next in turn."""
        turns = self._turns
        if len(turns) > MAX_TURNS:
            turns.clear()
        for target in targets:
            key = target.key
            turn = turns.get(key, 0)
            turns[key] = turn + 1
            node = target.node(turn)
            if node == self.node:
                self.deliver(topic, key, seq, epoch, n, batch, out)
                continue
            endpoint = self.endpoint_of(node)
            if endpoint is None:  # gone since the interest was computed: nobody gets it
                self.counters["queue_undelivered"] += n
                continue
            out.entry(endpoint, Queued, (topic, key, seq, epoch, n, batch))
            self.flow.sent(node, n)

    # ------------------------------------------------------------------ the chosen node

    def on_queued(self, sender: str, message: Queued, now: float, out: Outbox) -> None:
        """Batches an owner sent for our members of a queue group."""
        count = 0
        for topic, key, seq, epoch, n, batch in message.entries:
            self.deliver(topic, key, seq, epoch, n, batch, out)
            count += n
        self.flow.processed(sender, count)

    def deliver(
        self, topic: str, key: bytes, seq: int, epoch: int, n: int, batch: bytes, out: Outbox
    ) -> None:
        """Push the batch to the members here: one contiguous share each, in turn."""
        members = self._members.get(key)
        if not members:  # the last one left after the owner chose this node
            self.counters["queue_undelivered"] += n
            return
        self.counters["queue_delivered"] += n
        shares = self.shares(key, n)
        if len(shares) == 1:
            frame = [API_QUEUED, topic, seq, epoch, n, batch]
            out.push(shares[0][0], key, frame, n)
            return
        try:
            payloads = unpack_batch(batch, n)
        except ProtocolError as exc:  # only a faulty peer sends one
            self.bad_input(exc.code, f"queued batch of {topic!r}: {exc.message}")
            return
        for member, start, stop in shares:
            share = payloads[start:stop]
            frame = [API_QUEUED, topic, seq + start, epoch, len(share), pack_batch(share)]
            out.push(member, key, frame, len(share))

    def shares(self, key: bytes, n: int) -> list[tuple[bytes, int, int]]:
        """``n`` messages of ``key`` split among the members here, one contiguous share
        ``[start, stop)`` each, starting with the member whose turn it is ([] if none)."""
        assert n > 0
        members = self._members.get(key)
        if not members:
            return []
        turn = self._shares.get(key, 0)
        self._shares[key] = turn + 1
        size = math.ceil(n / min(len(members), n))
        return [
            (members[(turn + start // size) % len(members)], start, min(start + size, n))
            for start in range(0, n, size)
        ]

    def next_member(self, key: bytes, tried: set[bytes], n: int) -> bytes | None:
        """The member here that takes a share of ``n`` messages the ones ``tried`` could
        not; None, and the share counted as lost, when there is none."""
        for member in self._members.get(key, ()):
            if member not in tried:
                return member
        self.counters["queue_undelivered"] += n
        return None
