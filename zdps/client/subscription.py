"""A subscription without IO: what the SUB subscribes to, and what it delivers.

``SubscribePlan`` is what one ``subscribe`` call puts on the SUB and proves live with
a token (docs/PROTOCOL.md §9.4); ``Inbox`` turns live messages into deliveries: a
``closed`` message ends an exact topic, and with recovery on, gaps are fetched
(zdps/client/recovery.py) before newer messages are handed on. A batch-aware
subscription (§9.5) receives whole batches: one that follows on is handed on whole,
with no work per message; any other is taken message by message.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from zdps.client.protocol import LOST, Batch, Message
from zdps.client.recovery import Delivery, Fetch, Gap, Recovery, catching_up, recovering
from zdps.client.steps import Report, Request, Sleep
from zdps.topics import LOST_PREFIX, SYNC_PREFIX, exact_group, is_exact, prefix_group
from zdps.wire.api import MAX_SUBSCRIBER_NAME, Lost


@dataclass(frozen=True, slots=True)
class SubscribePlan:
    """The SUB subscriptions of one subscribe call, the token that proves them live, and
    the topics to replay from ``since`` first."""

    groups: list[bytes]
    token: str
    since: int | None = None
    replay: tuple[str, ...] = ()  # exact topics, each once, when ``since`` is set
    batches: bool = False  # on the node's batch PUB (§9.5)

    @classmethod
    def make(
        cls, topics: list[str], prefix: bool, since: int | None = None, batches: bool = False
    ) -> SubscribePlan:
        if since is not None and (prefix or since < 0):
            raise ValueError("since needs exact topics and a seq >= 0")
        make_group = prefix_group if prefix else exact_group
        groups = list(dict.fromkeys(make_group(t) for t in topics))
        replay = tuple(dict.fromkeys(topics)) if since is not None else ()
        return cls(groups, uuid.uuid4().hex, since, replay, batches)

    @property
    def token_subscription(self) -> bytes:
        return SYNC_PREFIX + self.token.encode()


def subscriber_name() -> str:
    """How this process names itself in its ``lost`` reports: host and pid."""
    return f"{socket.gethostname()} pid {os.getpid()}"[:MAX_SUBSCRIBER_NAME]


def notices(groups: list[bytes]) -> list[bytes]:
    """Each group, and the subscription to its loss notices (docs/PROTOCOL.md §9.6)."""
    return [subscription for g in groups for subscription in (g, LOST_PREFIX + g)]


class SubscriptionState:
    """Which exact topics of a subscription are still open (``topic delete`` ends them)."""

    def __init__(self, groups: list[bytes]) -> None:
        # topic -> None: a set that keeps the subscribe call's order
        self.open_exact = dict.fromkeys(g[:-1].decode() for g in groups if is_exact(g))
        self.prefixes = [g for g in groups if not is_exact(g)]

    def closed(self, topic: str) -> bool:
        """Note a ``closed`` control message; True if it ended one of our exact topics."""
        if topic in self.open_exact:
            del self.open_exact[topic]
            return True
        return False

    @property
    def ended(self) -> bool:
        return not self.open_exact and not self.prefixes

    def groups(self) -> list[bytes]:
        """The SUB subscriptions still wanted."""
        return [exact_group(t) for t in self.open_exact] + self.prefixes


def lost_report(
    topic: str, deliveries: list[Delivery], live: Message | None = None
) -> Report | None:
    """What a recovery that delivered ``deliveries`` tells the node, without waiting
    (§8.3 ``lost``), if it found anything missed; ``live``, the message that set it
    off, was not missed."""
    recovered = sum(type(d) is Message and d is not live for d in deliveries)
    missed = recovered + sum(d.last - d.first + 1 for d in deliveries if type(d) is Gap)
    return Report(Lost(topic, missed, recovered, subscriber_name())) if missed else None


class Inbox:
    """A subscription's deliveries, without IO: live messages in, messages and gaps out.

    Handles ``closed`` (a deleted topic ends an exact subscription) and, when
    ``recover`` is on, gap recovery; the IO side performs the fetches it asks for.
    """

    def __init__(self, groups: list[bytes], recover: bool) -> None:
        self.state = SubscriptionState(groups)
        self.recovery = Recovery() if recover else None
        self.ready: deque[Delivery | Batch] = deque()
        self.unsubscribe: list[bytes] = []  # groups the SUB socket must drop

    @property
    def ended(self) -> bool:
        return not self.ready and self.state.ended

    def subscriptions(self) -> list[bytes]:
        """What the SUB must be subscribed to: the groups still open and, with recovery
        on, their loss notices."""
        groups = self.state.groups()
        return notices(groups) if self.recovery is not None else groups

    def live(self, msg: Message) -> Fetch | None:
        """Take one message from the PUB; a Fetch must be answered by ``recovering``."""
        if msg.type == "closed":
            if self.recovery is not None:
                self.recovery.forget(msg.topic)
            if self.state.closed(msg.topic):
                group = msg.topic.encode() + b"\x00"
                self.unsubscribe += notices([group]) if self.recovery else [group]
        elif self.recovery is None:
            if msg.type != LOST:  # a notice is for recovery only
                self.ready.append(msg)
        else:
            outcome = self.recovery.live(msg)
            if isinstance(outcome, Fetch):
                return outcome
            self.ready.extend(outcome)
        return None

    def arrived(
        self, msg: Message | Batch, unsubscribe: Callable[[bytes], Any]
    ) -> Generator[Request | Report | Sleep, Any, None] | None:
        """A message (or batch) from the PUB: the recovery to carry out first, if any.

        Groups that ended (a deleted exact topic) are dropped with ``unsubscribe``.
        """
        if type(msg) is Batch:
            recovery = self.recovery
            if recovery is None or recovery.follows(
                msg.topic, msg.epoch, msg.seq, len(msg.payloads)
            ):
                self.ready.append(msg)
                return None
            return self._each(msg.messages(), unsubscribe)
        fetch = self.live(msg)  # type: ignore[arg-type]
        while self.unsubscribe:
            unsubscribe(self.unsubscribe.pop())
        return None if fetch is None else self.recovering(msg, fetch)  # type: ignore[arg-type]

    def _each(
        self, messages: list[Message], unsubscribe: Callable[[bytes], Any]
    ) -> Generator[Request | Report | Sleep, Any, None] | None:
        """A batch that does not simply follow on, message by message: the recovery
        the first one that needs it starts with, then the rest."""
        for at, msg in enumerate(messages):
            recovery = self.arrived(msg, unsubscribe)
            if recovery is not None:
                return self._then(recovery, messages[at + 1 :], unsubscribe)
        return None

    def _then(
        self, recovery: Generator, rest: list[Message], unsubscribe: Callable[[bytes], Any]
    ) -> Generator[Request | Report | Sleep, Any, None]:
        yield from recovery
        for msg in rest:
            more = self.arrived(msg, unsubscribe)
            if more is not None:
                yield from more

    def take(self, whole: bool = False) -> Delivery | Batch:
        """The next delivery; a batch whole, or (not ``whole``) its first message, the
        others next."""
        item = self.ready.popleft()
        if whole or type(item) is not Batch:
            return item
        messages = item.messages()
        self.ready.extendleft(reversed(messages[1:]))
        return messages[0]

    def recovering(
        self, msg: Message, fetch: Fetch
    ) -> Generator[Request | Report | Sleep, Any, None]:
        """The steps that answer ``fetch`` (from ``live(msg)``); the deliveries go to
        ``ready``, and what was missed is reported to the node (§8.3 ``lost``)."""
        assert self.recovery is not None
        deliveries = yield from recovering(self.recovery, msg, fetch)
        self.ready.extend(deliveries)
        if (report := lost_report(msg.topic, deliveries, msg)) is not None:
            yield report

    def caught_up(self) -> Generator[Request | Report | Sleep, Any, None]:
        """After the SUB reconnected (its node was restarted): what history holds of each
        topic after what was delivered, in order, with gaps. A message published while
        the SUB was away would otherwise be found only when a later one arrives.

        None after a topic whose owner did not answer: the next message or notice finds
        what is left, and a subscriber is not held up for long.
        """
        recovery = self.recovery
        assert recovery is not None
        for topic, cursor in recovery.cursors():
            deliveries = yield from catching_up(recovery, topic, cursor)
            if deliveries is None:
                return
            self.ready.extend(deliveries)
            if (report := lost_report(topic, deliveries)) is not None:
                yield report

    def replay(self, topic: str, entries: list[list] | None, since: int = 0) -> None:
        """History entries (a ``since`` request) go before anything live."""
        assert self.recovery is not None
        self.ready.extend(self.recovery.start(topic, entries or [], since))
