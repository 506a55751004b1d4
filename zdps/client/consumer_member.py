"""A member of a durable consumer: a DEALER of its own, messages to ack one by one.

A durable consumer lives at its topic's owner (docs/PROTOCOL.md §8.6); its members
share its messages, each message to one member at a time, again and again until it is
acked (``ack``), given up (``term``) or, after ``max_deliver`` deliveries, dead-lettered.
``nak`` asks for it to go again at once. A message that went before carries its
delivery count (``deliveries`` > 1, ``redelivered``): at least once, duplicates flagged.
The member joins (``consume``) as a queue group member does, again after a reconnect
(queue_member.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import zmq

from zdps.client.queue_member import AsyncQueueSubscription, QueueSubscription
from zdps.client.sockets import send_now
from zdps.wire import encode_api
from zdps.wire.answers import HandedOut
from zdps.wire.consumers import ACK, API_CONSUMER_ACK, NAK, TERM, Consume
from zdps.wire.ops import Op


@dataclass(slots=True)
class ConsumerMessage:
    """One message of a durable consumer; say what became of it with ``ack``, ``nak``
    or ``term`` (else it goes again after the consumer's ack_wait). Not frozen: that
    would cost a worker a microsecond per message."""

    topic: str
    seq: int
    epoch: int
    data: bytes
    deliveries: int  # 1 the first time
    _member: Verdicts
    _name: str

    @property
    def redelivered(self) -> bool:
        return self.deliveries > 1

    def ack(self) -> None:
        """Done: it will not go again."""
        self._member.verdict(self, ACK)

    def nak(self) -> None:
        """Not done: send it again now (to this member or another)."""
        self._member.verdict(self, NAK)

    def term(self) -> None:
        """Give up on it: it will not go again, and is not dead-lettered."""
        self._member.verdict(self, TERM)


class Verdicts:
    """What both drivers' consumer subscriptions add to a queue member's: messages
    with a delivery count, and verdicts sent back at once."""

    _sock: zmq.Socket

    def _pushed(self, answer: object) -> list[ConsumerMessage]:
        if type(answer) is not HandedOut:
            return []
        return [
            ConsumerMessage(topic, seq, epoch, payload, deliveries, self, name)
            for topic, name, epoch, seq, deliveries, payload in answer.messages
        ]

    def verdict(self, message: ConsumerMessage, verdict: int) -> None:
        """Send a verdict now: see ``verdicts``."""
        self.verdicts([message], verdict)

    def verdicts(self, messages: list[ConsumerMessage], verdict: int = ACK) -> None:
        """Send one verdict on each of ``messages``, in one frame, if there is room at
        once; one that finds none (the node is down) is lost, and its messages go again
        after the consumer's ack_wait. A busy worker acks the ``recv_batch`` it handled
        this way: one frame instead of one per message."""
        entries = [[m.topic, m._name, m.epoch, m.seq, verdict, m.deliveries] for m in messages]
        if entries:
            send_now(self._sock, [encode_api(API_CONSUMER_ACK, entries)])

    def _take_all(self) -> list[ConsumerMessage] | None:
        """Every message here now, in order; None if none is."""
        taken = list(self._batches)  # type: ignore[attr-defined]
        self._batches.clear()  # type: ignore[attr-defined]
        return taken or None


def consume_ops(topic: str, name: str) -> tuple[tuple[list[Op], list[Op]], str]:
    """A member's join (no leave: a member is one until its connection is gone), and
    what error messages call the consumer."""
    return ([Consume(topic, name)], []), f"consumer {name!r} of {topic!r}"


class ConsumerSubscription(Verdicts, QueueSubscription):  # type: ignore[misc]
    """Messages of a durable consumer, for ``Client.consume(topic, name)``; made by
    ``opened``."""

    def recv(self, timeout: float | None = None) -> ConsumerMessage | None:  # type: ignore[override]
        """The next message; None if none came within ``timeout`` s."""
        return self._next(timeout, self._take_batch)  # type: ignore[return-value]

    def recv_batch(self, timeout: float | None = None) -> list[ConsumerMessage] | None:  # type: ignore[override]
        """Every message here now (waiting up to ``timeout`` s for one), in order; ack
        them together with ``verdicts``."""
        return self._next(timeout, self._take_all)  # type: ignore[return-value]

    def __iter__(self) -> Iterator[ConsumerMessage]:  # type: ignore[override]
        while True:
            yield self.recv()  # type: ignore[misc]

    def __enter__(self) -> ConsumerSubscription:
        return self


class AsyncConsumerSubscription(Verdicts, AsyncQueueSubscription):  # type: ignore[misc]
    """Messages of a durable consumer, for ``AsyncClient.consume(topic, name)``; made
    by ``opened``."""

    async def recv(self) -> ConsumerMessage:  # type: ignore[override]
        """The next message."""
        while (message := self._take_batch()) is None:
            await self._wait()
        return message

    async def recv_batch(self) -> list[ConsumerMessage]:  # type: ignore[override]
        """Every message here now (waiting for one), in order."""
        while (messages := self._take_all()) is None:
            await self._wait()
        return messages

    async def __anext__(self) -> ConsumerMessage:  # type: ignore[override]
        return await self.recv()
