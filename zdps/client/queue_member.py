"""A member of a queue group: a DEALER of its own to the node, and the shares pushed on it.

Every message of the topic goes to one member of the group (docs/PROTOCOL.md §8.5), so
the node cannot use its PUB: it pushes each member's share as ``msg`` frames on the
connection that sent ``queue_join``. The DEALER has a routing id of its own, which a
reconnect keeps. A node that restarted has forgotten its members: the member joins
again after every reconnect (its handshakes are watched) and every REJOIN_EVERY
seconds, so a silent node restart costs at most that long. At most once: what the node
pushed to a member that dies is lost, and a member's share has gaps in ``seq`` by
design (the rest went to other members).
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, Self

import zmq

from zdps.client.protocol import Batch, Message, RequestError
from zdps.client.sockets import (
    IDLE_CHECK,
    Reconnects,
    ms,
    send_now,
    without_asyncio,
)
from zdps.client.subscription import SubscribePlan
from zdps.keys import CurveClient
from zdps.readiness import readable
from zdps.socket_monitor import unwatch, watch, watched_socket
from zdps.wire import E_TIMEOUT, decode_api
from zdps.wire.answers import Reply, Share, decode_answer, error_fields
from zdps.wire.api import QueueJoin, QueueLeave, encode_request
from zdps.wire.errors import ProtocolError
from zdps.wire.ops import Op

REJOIN_EVERY = 5.0  # seconds between two joins of a member that hears nothing else
READ_AT_ONCE = 1000  # frames taken before looking at anything else
log = logging.getLogger("zdps.client")


def queue_subscriptions(
    group: str, topics: Iterable[str], prefix: bool, since: int | None
) -> list[bytes]:
    """The subscriptions a member of queue group ``group`` joins it on; a share is live
    only, so ``since`` (a replay of history) is refused."""
    if since is not None:
        raise ValueError(f"queue group {group!r}: since replays history, which no share has")
    return SubscribePlan.make(list(topics), prefix).groups


def queue_ops(queue: str, subscriptions: list[bytes]) -> tuple[list[Op], list[Op]]:
    """The joins and leaves of a member of ``queue`` on ``subscriptions``."""
    joins = [QueueJoin(queue, s) for s in subscriptions]
    return joins, [QueueLeave(queue, s) for s in subscriptions]  # type: ignore[misc]


class QueueMember:
    """What members share (of queue groups, and of durable consumers): the socket, the
    joins and what was pushed, without waiting (the drivers wait)."""

    def __init__(
        self,
        ctx: zmq.Context,
        node: str,
        curve: CurveClient | None,
        ops: tuple[list[Op], list[Op]],
        label: str,
    ) -> None:
        self.label = label  # what error messages call it: "queue group 'w'"
        self._ops, self._leaves = ops
        for op in self._ops:
            try:  # a bad name or topic fails here, not at the node
                type(op).decode(op.args())
            except ProtocolError as exc:
                raise ValueError(exc.message) from None
        sock = self._sock = watched_socket(ctx, zmq.DEALER)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.ROUTING_ID, os.urandom(16))  # kept across reconnects
            if curve is not None:
                curve.apply(sock)
            watch(sock, zmq.EVENT_HANDSHAKE_SUCCEEDED, "queue")
            self._reconnects = Reconnects(sock)
            sock.connect(node)
        except zmq.ZMQError as exc:
            self._close_socket()
            raise ValueError(f"cannot connect to node endpoint {node!r}: {exc}") from None
        self._waiting: dict[int, Op] = {}  # ref -> the join it answers
        self._ref = 0
        self._rejoin_at = 0.0
        self._batches: deque[Any] = deque()  # what was pushed: Batch, or ConsumerMessage
        self._messages: deque[Message] = deque()
        self.bad_frames = 0

    @property
    def joined(self) -> bool:
        """Every join sent so far was answered."""
        return not self._waiting

    def _left(self, deadline: float, timeout: float) -> int:
        """Milliseconds left to wait for the joins' answers, or RequestError."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise RequestError(E_TIMEOUT, f"the node did not answer within {timeout} s")
        return ms(left)

    def _join(self, now: float) -> None:
        """Send a join per subscription; only the answers of the latest round count."""
        self._waiting.clear()
        for op in self._ops:
            self._ref += 1
            self._waiting[self._ref] = op
            send_now(self._sock, [encode_request(self._ref, op)])
        self._rejoin_at = now + REJOIN_EVERY

    def _idle(self, now: float) -> None:
        """Nothing arrived: join again if the connection was made anew, or if it is time."""
        if self._reconnects.reconnected() or now >= self._rejoin_at:
            self._join(now)

    def _read(self, reads: zmq.Socket) -> None:
        """Take the frames waiting (up to READ_AT_ONCE), without waiting."""
        for _ in range(READ_AT_ONCE):
            if not readable(reads):
                return
            self._frame(reads.recv(zmq.NOBLOCK))

    def _frame(self, frame: bytes) -> None:
        try:
            kind, *fields = decode_api(frame)
            answer = decode_answer(kind, fields)
        except ProtocolError as exc:
            self.bad_frames += 1
            log.warning("skipped a bad frame from the node: %s", exc)
            return
        if type(answer) is Reply:
            op = self._waiting.pop(answer.ref, None)
            if op is not None and not answer.ok:
                code, message = error_fields(answer.result)
                raise RequestError(code, f"{self.label}: {message}")
        elif answer is not None:
            self._batches.extend(self._pushed(answer))

    def _pushed(self, answer: Any) -> list[Any]:
        """What a push becomes for the application (a queue group's: a Batch)."""
        return [Batch(*answer)] if type(answer) is Share else []

    def _take_batch(self) -> Batch | None:
        return self._batches.popleft() if self._batches else None

    def _take_message(self) -> Message | None:
        if not self._messages and self._batches:
            self._messages.extend(self._batches.popleft().messages())
        return self._messages.popleft() if self._messages else None

    def close(self) -> None:
        """Leave the group (if the node has room for it at once) and close."""
        if not self._sock.closed:
            for op in self._leaves:
                self._ref += 1
                send_now(self._sock, [encode_request(self._ref, op)])
        self._close_socket()

    def _close_socket(self) -> None:
        unwatch(self._sock)
        self._sock.close()


class QueueSubscription(QueueMember):
    """Messages of a queue group's share, for ``Client.subscribe(..., group=NAME)``;
    made by ``opened``."""

    def opened(self, timeout: float) -> Self:
        """Join, and return once the node answered."""
        try:
            now = time.monotonic()
            self._join(now)
            deadline = now + timeout
            while not self.joined:
                if self._sock.poll(self._left(deadline, timeout)):
                    self._read(self._sock)
        except BaseException:
            self._close_socket()
            raise
        return self

    def recv(self, timeout: float | None = None) -> Message | None:
        """The next message of the share; None if none came within ``timeout`` s."""
        return self._next(timeout, self._take_message)  # type: ignore[return-value]

    def recv_batch(self, timeout: float | None = None) -> Batch | None:
        """The next batch of the share as it came; None if none came within ``timeout`` s."""
        return self._next(timeout, self._take_batch)  # type: ignore[return-value]

    def _next(self, timeout: float | None, take) -> Batch | Message | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (item := take()) is None:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return None
            wait = IDLE_CHECK if deadline is None else min(IDLE_CHECK, deadline - now)
            if self._sock.poll(ms(wait)):
                self._read(self._sock)
            else:
                self._idle(time.monotonic())
        return item

    def __iter__(self) -> Iterator[Message]:
        while True:
            yield self.recv()  # type: ignore[misc]

    def __enter__(self) -> QueueSubscription:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class AsyncQueueSubscription(QueueMember):
    """Messages of a queue group's share, for ``AsyncClient.subscribe(..., group=NAME)``;
    made by ``opened``."""

    async def opened(self, timeout: float) -> AsyncQueueSubscription:
        """Join, and return once the node answered."""
        self._reads = without_asyncio(self._sock)  # after an awaited poll, nothing waits
        try:
            now = time.monotonic()
            self._join(now)
            deadline = now + timeout
            while not self.joined:
                if await self._sock.poll(self._left(deadline, timeout)):
                    self._read(self._reads)
        except BaseException:
            self._close_socket()
            raise
        return self

    async def recv(self) -> Message:
        """The next message of the share."""
        while (message := self._take_message()) is None:
            await self._wait()
        return message

    async def recv_batch(self) -> Batch:
        """The next batch of the share as it came."""
        while (batch := self._take_batch()) is None:
            await self._wait()
        return batch

    async def _wait(self) -> None:
        if await self._sock.poll(IDLE_CHECK * 1000):
            self._read(self._reads)
        else:
            self._idle(time.monotonic())

    def __aiter__(self) -> AsyncQueueSubscription:
        return self

    async def __anext__(self) -> Message:
        return await self.recv()
