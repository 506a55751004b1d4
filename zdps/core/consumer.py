"""A durable consumer of one topic, as its owner keeps it: what goes out, what is pending.

JetStream's consumer with explicit acks, on the topic's history. The state is small: a
``cursor`` (the newest message handed out) and the ``pending`` set (handed out, not yet
acked). Everything up to the cursor that is not pending is done: acked, ended with
``term``, or dead-lettered. So:

* new messages are the history after the cursor, handed out oldest first while fewer
  than ``max_pending`` are pending (back-pressure: the rest waits in history);
* a pending message goes again ``ack_wait`` after its last delivery (a redelivery,
  with its delivery count), or at once after a ``nak``; redeliveries go before new
  messages;
* a message delivered ``max_deliver`` times that is still not acked is dead-lettered
  instead of going again;
* history must keep everything after the ``floor``: the oldest pending message, or
  the cursor when nothing is pending. A message history lost anyway (past the cap on
  what a consumer may hold back) is skipped and reported (``lost``);
* across a split, the other side's owner may go on sequencing an older epoch after the
  cursor moved on to a newer one: ``marks`` keeps the newest seq handed out of each
  epoch, and what history later holds of an epoch past its mark is **late**: it goes
  before new messages, flagged (``catch_up``).

The core does no IO and owns no history: ``handouts`` reads messages through ``fetch``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from zdps.wire.consumers import DEFAULT_ACK_WAIT, DEFAULT_MAX_DELIVER, DEFAULT_MAX_PENDING

COMPACT_SLACK = 1024  # stale entries kept beyond twice the pending ones, at most
Position = tuple[int, int]  # (epoch, seq), ordered as the owner sequenced them
Fetch = Callable[[Position, int], list[tuple[int, int, bytes]]]  # after, limit -> messages


def floor_of(cursor: Position, oldest_pending: Position | None) -> Position:
    """The newest message a consumer no longer needs history to keep: the one before
    its oldest pending message, else its cursor."""
    if oldest_pending is None:
        return cursor
    return oldest_pending[0], oldest_pending[1] - 1


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    """A consumer's settings, fixed when it is created."""

    ack_wait: float = DEFAULT_ACK_WAIT  # seconds a delivery waits before it goes again
    max_deliver: int = DEFAULT_MAX_DELIVER  # deliveries of a message; then dead-lettered
    max_pending: int = DEFAULT_MAX_PENDING  # messages handed out and not acked, at most

    def __post_init__(self) -> None:
        assert self.ack_wait > 0 and self.max_deliver >= 1 and self.max_pending >= 1


class Handout(NamedTuple):
    """One delivery to make: the message at ``position``, for the ``deliveries``-th time
    (a tuple: one is made per message handed out)."""

    position: Position
    payload: bytes
    deliveries: int


@dataclass(slots=True)
class Consumer:
    """One durable consumer's cursor and pending set."""

    config: ConsumerConfig
    cursor: Position = (0, 0)  # the newest message handed out; (0, 0): none yet
    pending: dict[Position, tuple[int, float]] = field(default_factory=dict)  # -> (n, due)
    # Due times in the order they fall due (deliveries wait the same ack_wait, and now
    # never goes back): ack_wait after a delivery, and at once after a nak or a
    # succession. Stale entries (acked since, or due at another time) are skipped.
    _due: deque[tuple[float, Position]] = field(default_factory=deque)
    _at_once: deque[tuple[float, Position]] = field(default_factory=deque)
    _oldest: deque[Position] = field(default_factory=deque)  # pending, oldest first; stale kept
    marks: dict[int, int] = field(default_factory=dict)  # epoch -> newest seq handed out
    _late: deque[Position] = field(default_factory=deque)  # behind the cursor, never had
    dead: list[Position] = field(default_factory=list)  # dead-lettered, not yet reported
    lost: int = 0  # messages history no longer had when they were due (again)
    # A successor owner cannot know what went out after the state it holds, nor an
    # owner what another owner (across a split) handed out of the history it merged:
    # messages up to here go as redeliveries (counted 2), so a duplicate is flagged.
    suspect: Position = (0, 0)

    # ------------------------------------------------------------------ out

    def handouts(self, fetch: Fetch, now: float, limit: int) -> list[Handout]:
        """Up to ``limit`` deliveries to make now: redeliveries that are due, then new
        messages while fewer than ``max_pending`` are pending."""
        out = self._redeliveries(fetch, now, limit)
        room = min(limit - len(out), self.config.max_pending - len(self.pending))
        if room > 0 and self._late:
            out += self._late_ones(fetch, now, room)
            room = min(limit - len(out), self.config.max_pending - len(self.pending))
        if room <= 0:
            return out
        due, pending, dues, marks = now + self.config.ack_wait, self.pending, self._due, self.marks
        assert not dues or dues[-1][0] <= due, "time goes forward"
        for epoch, seq, payload in fetch(self.cursor, room):
            position, (cursor_epoch, cursor_seq) = (epoch, seq), self.cursor
            assert position > self.cursor, "history comes in order"
            if epoch == cursor_epoch and seq > cursor_seq + 1 and cursor_seq:
                self.lost += seq - cursor_seq - 1  # history dropped them first
            self.cursor, marks[epoch] = position, seq
            deliveries = 2 if position <= self.suspect else 1
            pending[position] = (deliveries, due)  # new: after every message pending
            self._oldest.append(position)
            dues.append((due, position))
            out.append(Handout(position, payload, deliveries))
        if len(dues) > 2 * len(pending) + COMPACT_SLACK:
            self._compact()
        return out

    def _redeliveries(self, fetch: Fetch, now: float, limit: int) -> list[Handout]:
        out: list[Handout] = []
        pending = self.pending
        for queue in (self._at_once, self._due):
            while queue and queue[0][0] <= now and len(out) < limit:
                at, position = queue.popleft()
                entry = pending.get(position)
                if entry is None or entry[1] != at:
                    continue  # acked, or due at another time since: stale
                deliveries = entry[0]
                if deliveries >= self.config.max_deliver:
                    del pending[position]
                    self.dead.append(position)
                    continue
                found = fetch((position[0], position[1] - 1), 1)
                if not found or (found[0][0], found[0][1]) != position:
                    del pending[position]  # history dropped it: cannot go again
                    self.lost += 1
                    continue
                self._deliver_again(position, deliveries + 1, now)
                out.append(Handout(position, found[0][2], deliveries + 1))
        return out

    def catch_up(self, epochs: dict[int, int], fetch: Fetch) -> None:
        """History holds ``epochs`` (epoch -> newest seq): what it holds of an epoch older
        than the cursor's past its mark (0 for one never seen) came late, from the other
        side of a split, and goes before new messages."""
        late = []
        for epoch, newest in sorted(epochs.items()):
            mark = self.marks.get(epoch, 0)
            if epoch < self.cursor[0] and newest > mark:
                found = fetch((epoch, mark), newest - mark)
                late += [(e, s) for e, s, _ in found if e == epoch]
                self.marks[epoch] = newest
        if late:
            self._late = deque(sorted({*self._late, *late}))

    def _late_ones(self, fetch: Fetch, now: float, room: int) -> list[Handout]:
        """Late messages, as redeliveries: the other side may have handed them out."""
        out = []
        while self._late and len(out) < room:
            position = self._late.popleft()
            found = fetch((position[0], position[1] - 1), 1)
            if not found or (found[0][0], found[0][1]) != position:
                continue  # a gap in that epoch (it never had this seq), or trimmed
            self.pending[position] = (2, now + self.config.ack_wait)
            self._due.append((now + self.config.ack_wait, position))
            out.append(Handout(position, found[0][2], 2))
        self._oldest = deque(sorted(self.pending))  # the late ones are older than some
        return out

    def _compact(self) -> None:
        """Drop the stale entries: behind one message pending for long, every later one
        acked since would wait in the queues until it is due."""
        pending = self.pending
        self._due = deque(e for e in self._due if pending.get(e[1], (0, -1.0))[1] == e[0])
        self._at_once = deque(e for e in self._at_once if pending.get(e[1], (0, -1.0))[1] == e[0])
        self._oldest = deque(p for p in self._oldest if p in pending)

    def _deliver_again(self, position: Position, deliveries: int, now: float) -> None:
        due = now + self.config.ack_wait
        assert position in self.pending and (not self._due or self._due[-1][0] <= due)
        self.pending[position] = (deliveries, due)
        self._due.append((due, position))

    # ------------------------------------------------------------------ in

    def ack(self, position: Position) -> bool:
        """The message is done; False if it was not pending (a late or repeated ack)."""
        return self.pending.pop(position, None) is not None

    def term(self, position: Position) -> bool:
        """The member gives up on the message: it is done, without going again."""
        return self.ack(position)

    def nak(self, position: Position, now: float, deliveries: int = 0) -> bool:
        """The message goes again at once (at the next ``handouts``), unless the nak
        answers an older delivery than its last (``deliveries``; 0: not said): then the
        member that has it now may still ack it."""
        entry = self.pending.get(position)
        if entry is None or (deliveries and deliveries != entry[0]):
            return False
        self.pending[position] = (entry[0], now)
        self._at_once.append((now, position))
        return True

    # ------------------------------------------------------------------ succession

    def snapshot(self) -> tuple[Position, list[list[int]], list[list[int]]]:
        """``(cursor, [[epoch, seq, deliveries], ...], [[epoch, mark], ...])``: what a
        successor needs (late messages not handed out yet are pending, never had)."""
        pending = [[*p, n] for p, (n, _) in self.pending.items()] + [[*p, 1] for p in self._late]
        return self.cursor, sorted(pending), [[e, s] for e, s in sorted(self.marks.items())]

    @classmethod
    def succeed(
        cls,
        config: ConsumerConfig,
        cursor: Position,
        pending: list[list[int]],
        newest: Position,
        now: float,
        marks: list[list[int]],
    ) -> Consumer:
        """The consumer as a successor owner continues it from a snapshot: what was
        pending goes again at once, and what came after the cursor up to ``newest`` (the
        history it holds) may have gone out already, so it goes as a redelivery."""
        consumer = cls(config, cursor, suspect=newest, marks=dict(map(tuple, marks)))
        for epoch, seq, deliveries in sorted(pending):
            consumer.pending[epoch, seq] = (deliveries, now)
            consumer._at_once.append((now, (epoch, seq)))
            consumer._oldest.append((epoch, seq))
        return consumer

    # ------------------------------------------------------------------ views

    def next_due(self) -> float:
        """When a pending message is next due again (inf: none)."""
        pending, first = self.pending, math.inf
        for queue in (self._at_once, self._due):
            while queue and pending.get(queue[0][1], (0, -1.0))[1] != queue[0][0]:
                queue.popleft()  # stale
            if queue:
                first = min(first, queue[0][0])
        return first

    @property
    def floor(self) -> Position:
        """History must keep every message after this one for the consumer."""
        oldest, pending = self._oldest, self.pending
        while oldest and oldest[0] not in pending:
            oldest.popleft()  # acked since: stale
        first = min([queue[0] for queue in (oldest, self._late) if queue], default=None)
        return floor_of(self.cursor, first)

    def take_dead(self) -> list[Position]:
        """The messages dead-lettered since the last call."""
        dead, self.dead = self.dead, []
        return dead
