"""Gap detection and recovery for subscribers, without IO.

A subscriber tracks the last ``(epoch, seq)`` it delivered per topic. A live message
that does not follow it (a gap in seq, a new epoch after an owner change, messages
dropped while disconnected) makes the subscriber fetch the missing range from the
topic's history (docs/PROTOCOL.md §7.9) and deliver it, in order, before the live
message. What history no longer holds is reported as a ``Gap``: never a silent loss.

Order is ``(epoch, seq)``: an owner that holds a topic's history starts its epochs
above every stored one, so a later epoch means a later owner. A message of an epoch
older than the current one (from a previous owner, late, or from the other side of a
healed netsplit) is delivered once, without moving the cursor; a gap before it in
its epoch is fetched or reported like any other. A loss notice from the node (§9.6)
names the last position it sent: what this subscriber lacks up to there is fetched
the same way, so a lost tail is found even when no later message comes.

A recovery asks its driver for history as typed steps (``Request``, ``Sleep``), so the
blocking and the asyncio client, and the simulated cluster of the tests, run it alike.
"""

from __future__ import annotations

import copy
from collections.abc import Generator
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from zdps.client.protocol import LOST, Message
from zdps.client.steps import Request, Sleep
from zdps.wire.api import HistoryQuery, Position

RECENT_EPOCHS = 8  # epochs per topic remembered to drop duplicates of late messages


class Gap(NamedTuple):
    """Messages ``first``..``last`` of ``epoch`` are lost for good (not in history)."""

    topic: str
    epoch: int
    first: int
    last: int
    type: str = "gap"


class Fetch(NamedTuple):
    """Ask the owner for ``topic``'s history after ``after``, up to ``until`` (excluded)."""

    topic: str
    after: tuple[int, int]
    until: tuple[int, int]

    def pager(self) -> Pager:
        return Pager.make(self.topic, after=self.after, until=self.until)


Delivery = Message | Gap


@dataclass(slots=True)
class _Topic:
    cursor: tuple[int, int]  # the newest (epoch, seq) delivered
    seen: dict[int, int] = field(default_factory=dict)  # epoch -> highest seq delivered
    after: tuple[int, int] = (0, 0)  # where the pending fetch starts

    @classmethod
    def before(cls, epoch: int, seq: int) -> _Topic:
        """As if everything of ``epoch`` before ``seq`` had been delivered."""
        return cls((epoch, seq - 1), {epoch: seq - 1})

    def note(self, epoch: int, seq: int) -> None:
        if seq > self.seen.get(epoch, 0):
            self.seen[epoch] = seq
            if len(self.seen) > RECENT_EPOCHS:
                del self.seen[min(self.seen)]

    def delivered(self, epoch: int, seq: int) -> bool:
        return seq <= self.seen.get(epoch, 0)


@dataclass(slots=True)
class Recovery:
    """Decides, per live message, whether to deliver it, drop it, or fetch first."""

    topics: dict[str, _Topic] = field(default_factory=dict)
    # topic -> the seq a ``since`` replay that found nothing stored asked for
    expected: dict[str, int] = field(default_factory=dict)

    def live(self, msg: Message) -> Fetch | list[Delivery]:
        """A message from the PUB: what to deliver now, or the fetch to make first.

        After a ``Fetch``, call ``recovered`` with what came back (``None`` if the
        fetch failed) and the same message.
        """
        state = self.topics.get(msg.topic)
        if msg.type == LOST:
            return self._lost(state, msg)
        if state is None:
            since = self.expected.pop(msg.topic, 0)
            if msg.seq <= since or not since:  # nothing expected before it
                self.topics[msg.topic] = _Topic((msg.epoch, msg.seq), {msg.epoch: msg.seq})
                return [msg]
            state = self.topics[msg.topic] = _Topic.before(msg.epoch, since)
        key = (msg.epoch, msg.seq)
        if state.delivered(*key):
            return []  # already delivered, live or recovered
        known = state.seen.get(msg.epoch)
        if known is not None and msg.seq == known + 1:
            return self._deliver(state, msg)  # the next one of its epoch (late or not)
        return self._fetch(state, msg.topic, key)

    @staticmethod
    def _fetch(state: _Topic, topic: str, until: tuple[int, int]) -> Fetch:
        """The fetch of what is missing before ``until``."""
        epoch = until[0]
        if epoch > state.cursor[0]:
            # A new epoch. Its predecessor may have a tail we never got, and after a
            # netsplit the other side's epochs sort before ours: fetch from the oldest
            # position we know.
            state.after = min(state.seen.items())
        else:
            state.after = (epoch, state.seen.get(epoch, 0))  # a gap in a known or late epoch
        return Fetch(topic, state.after, until)

    @staticmethod
    def _lost(state: _Topic | None, notice: Message) -> Fetch | list[Delivery]:
        """A loss notice: messages up to its position were sent while some subscriber
        could not take them. What this one lacks of them is fetched; nothing is
        delivered for the notice itself. Before any message of the topic arrived, there
        is no telling what it lacks."""
        if state is None or state.delivered(notice.epoch, notice.seq):
            return []
        return Recovery._fetch(state, notice.topic, (notice.epoch, notice.seq + 1))

    def follows(self, topic: str, epoch: int, seq: int, n: int) -> bool:
        """Whether messages ``seq``..``seq + n - 1`` of ``epoch`` can be delivered as they
        are, as ``live`` would deliver each (they come next); if so they count as
        delivered. The batch-aware subscriptions' fast path: no work per message."""
        state = self.topics.get(topic)
        last = seq + n - 1
        if state is None:
            if topic in self.expected:
                return False  # a replay from ``since`` found nothing: look closer
            self.topics[topic] = _Topic((epoch, last), {epoch: last})
            return True
        if state.seen.get(epoch, -1) != seq - 1:
            return False
        if (epoch, last) > state.cursor:
            state.cursor = (epoch, last)
        state.note(epoch, last)
        return True

    def recovered(self, msg: Message, entries: list[list] | None) -> list[Delivery]:
        """Deliver fetched ``entries`` ([epoch, seq, payload], oldest first), then ``msg``;
        report what is missing between them as gaps."""
        state = self.topics[msg.topic]
        out: list[Delivery] = []
        notice = msg.type == LOST  # recovered up to and with its seq; not delivered
        after, until = state.after, (msg.epoch, msg.seq + notice)
        for epoch, seq, payload in entries or []:
            if after < (epoch, seq) < until and not state.delivered(epoch, seq):
                out += self._gap_before(state, msg.topic, epoch, seq)
                out += self._deliver(state, Message(msg.topic, seq, epoch, payload))
        out += self._gap_before(state, msg.topic, *until)
        return out if notice else out + self._deliver(state, msg)

    def start(self, topic: str, entries: list[list], since: int = 0) -> list[Delivery]:
        """Replay ``entries``, the answer to a request from seq ``since`` of the newest
        stored epoch, before live messages.

        What history no longer holds from ``since`` on is a gap: before the first entry,
        or, when nothing is stored, before the first live message if its seq is higher.
        ``since`` 0 asks for whatever is stored, so nothing before it is missing.
        """
        out: list[Delivery] = []
        if since and entries and entries[0][1] >= since:
            self.topics[topic] = _Topic.before(entries[0][0], since)
        elif since and not entries:
            self.expected[topic] = since
        for epoch, seq, payload in entries:
            msg = Message(topic, seq, epoch, payload)
            state = self.topics.get(topic)
            if state is None:
                self.topics[topic] = _Topic((epoch, seq), {epoch: seq})
                out.append(msg)
            elif (epoch, seq) > state.cursor:
                out += self._gap_before(state, topic, epoch, seq)
                out += self._deliver(state, msg)
        return out

    def leaves_gaps(self, msg: Message, entries: list[list] | None) -> bool:
        """Whether ``recovered`` with these entries would report a gap (changes nothing)."""
        trial = Recovery({msg.topic: copy.deepcopy(self.topics[msg.topic])})
        return any(isinstance(item, Gap) for item in trial.recovered(msg, entries))

    def start_leaves_gaps(self, topic: str, entries: list[list]) -> bool:
        """Whether ``start`` with these entries would report a gap (changes nothing)."""
        trial = Recovery({topic: copy.deepcopy(self.topics[topic])} if topic in self.topics else {})
        return any(isinstance(item, Gap) for item in trial.start(topic, entries))

    def cursor(self, topic: str) -> tuple[int, int] | None:
        state = self.topics.get(topic)
        return state.cursor if state else None

    def cursors(self) -> list[tuple[str, tuple[int, int]]]:
        """Each topic something was delivered of, with the newest position delivered."""
        return [(topic, state.cursor) for topic, state in self.topics.items()]

    def forget(self, topic: str) -> None:
        """The topic was deleted: its next message starts afresh."""
        self.topics.pop(topic, None)
        self.expected.pop(topic, None)

    @staticmethod
    def _deliver(state: _Topic, msg: Message) -> list[Delivery]:
        """Deliver ``msg``; the cursor only moves forward (a late message leaves it)."""
        key = (msg.epoch, msg.seq)
        if key > state.cursor:
            state.cursor = key
        state.note(*key)
        return [msg]

    @staticmethod
    def _gap_before(state: _Topic, topic: str, epoch: int, seq: int) -> list[Delivery]:
        """The gap, if any, before ``(epoch, seq)`` in its epoch: what was never delivered."""
        first = state.seen.get(epoch, 0) + 1
        return [Gap(topic, epoch, first, seq - 1)] if seq > first else []


FETCH_ATTEMPTS = 5  # tries of one history page while ownership settles
FETCH_RETRY = 0.2  # seconds between tries
# Before a gap is reported as lost, history is asked once more after this many
# seconds: right after an owner change or a heal, the owner may still be receiving it.
GAP_RECHECK = 1.0


@dataclass(slots=True)
class Pager:
    """Fetches one range of history page by page (replies carry ``more``)."""

    query: HistoryQuery  # the next page to ask for
    entries: list[list] = field(default_factory=list)
    done: bool = False

    @classmethod
    def make(
        cls,
        topic: str,
        since: int | None = None,
        after: Position | None = None,
        until: Position | None = None,
    ) -> Pager:
        if since is not None:
            return cls(HistoryQuery(topic, since=since, until=until))
        return cls(HistoryQuery(topic, after=after or (0, 0), until=until))

    def feed(self, reply: dict) -> None:
        page = reply["entries"]
        self.entries += page
        if reply["more"] and page:
            epoch, seq = page[-1][:2]
            self.query = replace(self.query, since=None, after=(epoch, seq))
        else:
            self.done = True


def fetching(
    pager: Pager, attempts: int = FETCH_ATTEMPTS
) -> Generator[Request | Sleep, dict | None, list[list] | None]:
    """Fetch ``pager``'s range page by page, retrying while ownership settles; the
    entries, or None if the owner could not be reached."""
    for _ in range(attempts):
        while not pager.done:
            reply = yield Request(pager.query)
            if reply is None:
                break
            pager.feed(reply)
        else:
            return pager.entries
        yield Sleep(FETCH_RETRY)
    return None


def catching_up(
    recovery: Recovery, topic: str, cursor: Position
) -> Generator[Request | Sleep, dict | None, list[Delivery] | None]:
    """What history holds of ``topic`` after ``cursor``, to deliver (a reconnected SUB's
    catching up); None if the owner did not answer its one try. A gap is asked for once
    more before it is reported, as in ``recovering``."""
    entries = yield from fetching(Pager.make(topic, after=cursor), attempts=1)
    if entries is None:
        return None
    if recovery.start_leaves_gaps(topic, entries):
        yield Sleep(GAP_RECHECK)
        again = yield from fetching(Pager.make(topic, after=cursor), attempts=1)
        entries = entries if again is None else again
    return recovery.start(topic, entries)


def recovering(
    recovery: Recovery, msg: Message, fetch: Fetch
) -> Generator[Request | Sleep, dict | None, list[Delivery]]:
    """Answer ``fetch`` (from ``recovery.live(msg)``); what to deliver, gaps included.

    A gap is asked for once more before it is reported: right after an owner change
    or a heal, the owner may still be receiving the history.
    """
    entries = yield from fetching(fetch.pager())
    if recovery.leaves_gaps(msg, entries):
        yield Sleep(GAP_RECHECK)
        entries = (yield from fetching(fetch.pager())) or entries
    return recovery.recovered(msg, entries)
