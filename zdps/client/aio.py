"""The asyncio client: the session's operations (zdps/client/session.py), awaited.

One reader task takes in every frame the node sends and wakes the operations that
have news; operations run concurrently, each waiting for its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Generator, Iterable
from typing import Any

import zmq
import zmq.asyncio

from zdps.client import publishing
from zdps.client.aio_subscription import AsyncSubscription
from zdps.client.consumer_member import AsyncConsumerSubscription, consume_ops
from zdps.client.ledger import StreamResult
from zdps.client.protocol import (
    DEFAULT_RCVHWM,
    E_CLOSED,
    E_UNREACHABLE,
    STREAM_BATCH,
    PublishError,
    PublishResult,
    RequestError,
    ack_level,
    node_endpoint,
)
from zdps.client.queue_member import AsyncQueueSubscription, queue_ops, queue_subscriptions
from zdps.client.session import Session
from zdps.client.sockets import CONNECT_CHECK, open_dealer, open_sub, send_now, set_up
from zdps.client.steps import (
    Dial,
    Drain,
    Emit,
    Filter,
    Operation,
    Pending,
    Send,
    Sleep,
    Step,
    T,
    Wait,
)
from zdps.client.subscription import SubscribePlan
from zdps.keys import client_keys
from zdps.wire import api
from zdps.wire.api import Delete, Members, Status

log = logging.getLogger("zdps.client")
CONNECT_POLL = 0.005  # seconds between looks at the connection's events in check_node


class AsyncClient:
    """A connection to one node's API socket, for use inside one asyncio event loop.

    One loop at a time: the client may be used again from a later loop (a second
    ``asyncio.run``) once the first is done with it. ``timeout`` bounds every wait,
    for a reply and for room to send. Pending requests fail with RequestError
    (code ``closed``) when the client is closed or its reader stops. ``curve_key``
    and ``server_key``: as for ``Client``.
    """

    def __init__(
        self,
        node: str | None = None,
        timeout: float = 10.0,
        curve_key: str | None = None,
        server_key: str | None = None,
    ) -> None:
        self.node = node_endpoint(node)
        self.timeout = timeout
        self._ctx = zmq.asyncio.Context.instance()
        self._curve = client_keys(curve_key, server_key)
        self._sock, self._check = open_dealer(self._ctx, self.node, self._curve)
        self._session = Session(self.node)
        self._wakers: dict[Pending, asyncio.Future] = {}  # operations waiting for news
        self._reader: asyncio.Task | None = None
        self._reader_loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def bad_frames(self) -> int:
        """Frames from the node that could not be parsed (skipped)."""
        return self._session.bad_frames

    # ------------------------------------------------------------------ the driver

    async def _run(self, steps: Operation[T], sub: zmq.Socket | None = None) -> T:
        """Carry out an operation that returns one result."""
        try:
            step = next(steps)
            while True:
                step = steps.send(await self._do(step, sub))
        except StopIteration as done:
            return done.value
        finally:
            steps.close()
            self._send_outbox()

    async def _iterate(self, steps: Operation[None]) -> AsyncGenerator[Any, None]:
        """Carry out an operation that emits items; yields them as they come."""
        try:
            step = next(steps)
            while True:
                if type(step) is Emit:
                    for item in step.items:
                        yield item
                    step = next(steps)
                else:
                    step = steps.send(await self._do(step))
        except StopIteration:
            return
        finally:
            steps.close()
            self._send_outbox()

    async def _do(self, step: Step, sub: zmq.Socket | None = None) -> Any:
        if self._closed:
            raise RequestError(E_CLOSED, "the client is closed")
        kind = type(step)
        if kind is Wait:
            return await self._wait(step.pending, step.until)
        if kind is Send:
            return await self._send(step.frame, step.until)
        if kind is Drain:
            self._ensure_reader()
            return await asyncio.sleep(0)  # the reader takes in what has arrived
        if kind is Sleep:
            return await asyncio.sleep(step.seconds)
        if sub is not None and (kind is Dial or kind is Filter):
            return set_up(sub, step)
        raise TypeError(f"{step!r} is not a step this operation may take")

    async def _send(self, frame: bytes, until: float) -> bool:
        """Queue ``frame``, waiting until ``until`` for room; False if there was none."""
        sent = self._sock.send(frame)  # settled at once when there is room
        if not sent.done() and not await self._until(sent, until):
            return False
        if sent.cancelled():  # by closing the socket
            raise RequestError(E_CLOSED, "the client was closed")
        sent.result()
        return True

    async def _wait(self, pending: Pending, until: float | None) -> None:
        """Until the reader has news for ``pending``, or ``until``."""
        self._ensure_reader()
        waker = self._wakers[pending] = asyncio.get_running_loop().create_future()
        try:
            if await self._until(waker, until):
                waker.result()  # RequestError(closed) if the client closed, or its reader died
        finally:
            if self._wakers.get(pending) is waker:
                del self._wakers[pending]

    async def _until(self, future: asyncio.Future, until: float | None) -> bool:
        """Wait for ``future`` until ``until``; False (and cancelled) if it is not done."""
        timeout = None if until is None else max(0.0, until - self._session.clock())
        try:
            done, _ = await asyncio.wait((future,), timeout=timeout)
        finally:
            future.cancel()  # nothing if done
        return bool(done)

    def _ensure_reader(self) -> None:
        """Start the reader task in the running loop unless one runs there already."""
        loop = asyncio.get_running_loop()
        reader = self._reader
        if reader is not None and not reader.done() and self._reader_loop is loop:
            return
        if reader is not None and not reader.done():
            with contextlib.suppress(RuntimeError):  # its loop may be closed already
                reader.cancel()
        self._reader = loop.create_task(self._read())
        self._reader_loop = loop

    async def _read(self) -> None:
        absorb, wakers = self._session.absorb, self._wakers
        try:
            while True:
                for pending in absorb(await self._sock.recv()):
                    waker = wakers.pop(pending, None)
                    if waker is not None and not waker.done():
                        waker.set_result(None)
        except asyncio.CancelledError:
            self._fail_waiting("the client stopped reading")
            raise
        except Exception as exc:
            log.exception("the reader of %s stopped", self.node)
            self._fail_waiting(f"the client stopped reading: {exc!r}")

    def _fail_waiting(self, why: str) -> None:
        """Fail every operation waiting for news (requests, watches) with RequestError(closed)."""
        wakers = list(self._wakers.values())
        self._wakers.clear()
        for waker in wakers:
            if not waker.done():
                waker.set_exception(RequestError(E_CLOSED, why))

    def _send_outbox(self) -> None:
        if self._session.outbox and not self._closed:
            send_now(self._sock, self._session.take_outbox())

    async def _recover(self, steps: Generator) -> Any:
        """Carry out a recovery's steps (zdps.client.recovery); its result."""
        return await self._run(self._session.serve(steps, self.timeout))

    # ------------------------------------------------------------------ requests

    async def request(self, op: str, /, *, _timeout: float | None = None, **args: Any) -> Any:
        """Send one API request (``args`` are its arguments) and wait for its reply."""
        timeout = self.timeout if _timeout is None else _timeout
        return await self._run(self._session.request(op, args, timeout))

    async def info(self) -> dict[str, Any]:
        return await self._run(self._session.info(self.timeout))

    async def status(self) -> dict[str, Any]:
        return await self._run(self._session.call(Status(), self.timeout))

    async def drain(self, timeout: float | None = None) -> dict[str, Any]:
        """Ask the node to drain and leave (see ``Client.drain``)."""
        wait = (api.MAX_DRAIN_TIMEOUT if timeout is None else timeout) + self.timeout
        return await self._run(self._session.call(api.Drain(timeout), wait))

    async def members(self, topic: str) -> dict[str, Any]:
        return await self._run(self._session.call(Members(topic), self.timeout))

    async def history(self, topic: str, **args: Any) -> dict[str, Any]:
        """One page of ``topic``'s stored messages (docs/PROTOCOL.md §7.9)."""
        return await self.request("history", topic=topic, **args)

    async def create_topic(self, topic: str, history: int, ttl: float) -> None:
        """Set ``topic``'s retention (see ``Client.create_topic``)."""
        await self.request("create", topic=topic, history=history, ttl=ttl)

    async def delete_topic(self, topic: str) -> PublishResult:
        return await self._run(self._session.call(Delete(topic), self.timeout))

    def watch(self, topic: str) -> AsyncGenerator[dict[str, Any], None]:
        """The members of ``topic`` now, then again after every change.

        Closing the generator (``aclose``) or the client sends ``unwatch`` to the node.
        """
        return self._iterate(self._session.watch(topic, self.timeout))

    # ------------------------------------------------------------------ publishing

    async def publish(
        self, topic: str, data: bytes | str, ack: bool | str = True
    ) -> PublishResult | None:
        """Publish one message and wait for its acknowledgement at level ``ack``.

        ``ack``: "owner" (or True), "replicated", "none" (or False); see ``Client.publish``.
        """
        return await self._run(self._session.publish(topic, data, ack_level(ack), self.timeout))

    def publish_many(
        self,
        messages: Iterable[tuple[str, bytes | str]],
        ack: bool | str = True,
        window: int = 1000,
        batch: int = 1,
    ) -> AsyncGenerator[PublishResult | PublishError, None]:
        """Publish a stream, keeping at most ``window`` unacknowledged; yields each outcome.

        As ``Client.publish_many``: the same arguments, outcomes and early stop.
        ``messages`` is read inside the event loop, so it must not block.
        """
        steps = publishing.publish_many(self._session, messages, ack, window, batch, self.timeout)
        return self._iterate(steps)

    async def publish_stream(
        self,
        messages: Iterable[tuple[str, bytes | str]],
        window: int = 20_000,
        batch: int = STREAM_BATCH,
        ack: str = "owner",
    ) -> StreamResult:
        """Publish a stream with acks, counting them (see ``Client.publish_stream``).

        ``messages`` is read inside the event loop, so it must not block.
        """
        steps = publishing.publish_stream(self._session, messages, window, batch, ack, self.timeout)
        return await self._run(steps)

    # ------------------------------------------------------------------ subscribing

    async def subscribe(
        self,
        *topics: str,
        prefix: bool = False,
        rcvhwm: int = DEFAULT_RCVHWM,
        recover: bool = True,
        since: int | None = None,
        batches: bool = False,
        group: str | None = None,
    ) -> AsyncSubscription | AsyncQueueSubscription:
        """Subscribe to exact topics (or prefixes); returns once the owners know it.

        ``rcvhwm``, ``recover``, ``since``, ``batches`` and ``group``: see
        ``Client.subscribe``.
        """
        if group is not None:
            ops = queue_ops(group, queue_subscriptions(group, topics, prefix, since))
            label = f"queue group {group!r}"
            member = AsyncQueueSubscription(self._ctx, self.node, self._curve, ops, label)
            return await member.opened(self.timeout)
        plan = SubscribePlan.make(list(topics), prefix, since, batches)
        sock = open_sub(self._ctx, rcvhwm, self._curve)
        try:
            inbox = await self._run(self._session.subscribe(plan, recover, self.timeout), sock)
        except BaseException:
            sock.close()
            raise
        return AsyncSubscription(sock, inbox, self._recover, batches)

    async def create_consumer(self, topic: str, name: str, **settings: Any) -> dict[str, Any]:
        """Create durable consumer ``name`` of ``topic`` (see ``Client.create_consumer``)."""
        return await self.request("consumer_create", topic=topic, name=name, **settings)

    async def consume(self, topic: str, name: str) -> AsyncConsumerSubscription:
        """Become a member of durable consumer ``name`` of ``topic`` (see ``Client.consume``)."""
        ops, label = consume_ops(topic, name)
        member = AsyncConsumerSubscription(self._ctx, self.node, self._curve, ops, label)
        return await member.opened(self.timeout)  # type: ignore[return-value]

    async def check_node(self, timeout: float = CONNECT_CHECK) -> None:
        """Raise RequestError (code ``unreachable``) at once if what is at the endpoint
        is no zdps node, as far as connecting to it tells (see ``Client.check_node``)."""
        check, deadline = self._check, time.monotonic() + timeout
        while not check.read() and time.monotonic() < deadline:
            await asyncio.sleep(CONNECT_POLL)
        why = check.verdict(self.node)
        if why is not None:
            raise RequestError(E_UNREACHABLE, why)

    async def flush(self, timeout: float | None = None) -> int:
        """Wait until the node has read every fire-and-forget publish sent so far (see
        ``Client.flush``); how many it did not confirm."""
        return await self._run(self._session.confirm(self.timeout if timeout is None else timeout))

    async def close(self, linger: float | None = None) -> int:
        """Close the connection: pending requests fail at once, live watches end.

        First waits up to ``linger`` s for the node to read the fire-and-forget
        publishes sent; returns how many it did not confirm (see ``Client.close``).
        """
        if self._closed:
            return 0
        left = await self.flush(linger) if self._session.unconfirmed else 0
        if left:
            log.warning(
                "closing with %d fire-and-forget publish(es) that %s did not confirm reading",
                left, self.node,
            )  # fmt: skip
        send_now(self._sock, self._session.close())
        self._closed = True
        self._fail_waiting("the client was closed")
        reader, self._reader = self._reader, None
        if reader is not None and not reader.done():
            if self._reader_loop is asyncio.get_running_loop():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            else:
                with contextlib.suppress(RuntimeError):  # its loop may be closed already
                    reader.cancel()
        self._check.close()
        self._sock.close()
        return left

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *_exc: object) -> None:
        cancelled = exc_type is not None and issubclass(
            exc_type, KeyboardInterrupt | asyncio.CancelledError
        )
        await self.close(linger=0 if cancelled else None)
