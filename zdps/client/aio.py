"""The asyncio client: the same operations as ``Client``, awaited."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any

import zmq
import zmq.asyncio

from zdps.client.protocol import (
    DEFAULT_RCVHWM,
    E_CLOSED,
    IDLE_CHECK,
    ClientProtocol,
    PublishResult,
    Reconnects,
    RequestError,
    SubscribePlan,
    ack_level,
    decode_delivery,
    node_endpoint,
    publish_entry,
    reachable_pub,
    to_bytes,
)
from zdps.client.recovery import Delivery, Inbox, Pager, Step, fetching, recovering
from zdps.wire import E_TIMEOUT, ProtocolError

log = logging.getLogger("zdps.client")


class AsyncClient:
    """A connection to one node's API socket, for use inside one asyncio event loop.

    One loop at a time: the client may be used again from a later loop (a second
    ``asyncio.run``) once the first is done with it. ``timeout`` bounds every wait,
    for a reply and for room to send. Pending requests fail with RequestError
    (code ``closed``) when the client is closed or its reader stops.
    """

    def __init__(self, node: str | None = None, timeout: float = 10.0) -> None:
        self.node = node_endpoint(node)
        self.timeout = timeout
        self._ctx = zmq.asyncio.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        try:
            self._sock.setsockopt(zmq.LINGER, 1000)
            self._sock.connect(self.node)
        except zmq.ZMQError as exc:
            self._sock.close(0)
            raise ValueError(f"cannot connect to node endpoint {self.node!r}: {exc}") from None
        self._proto = ClientProtocol()
        self._waiters: dict[int, asyncio.Future] = {}
        self._events: dict[int, asyncio.Queue] = {}  # live watches
        self._reader: asyncio.Task | None = None
        self._reader_loop: asyncio.AbstractEventLoop | None = None
        self._info: dict[str, Any] | None = None
        self._closed = False
        self.bad_frames = 0  # frames from the node that could not be parsed (skipped)

    # ------------------------------------------------------------------ plumbing

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
        try:
            while True:
                frame = await self._sock.recv()
                try:
                    outcomes, events = self._proto.parse(frame)
                except ProtocolError as exc:
                    self.bad_frames += 1
                    log.warning("skipped a bad frame from %s: %s", self.node, exc)
                    continue
                for ref, outcome in outcomes:
                    waiter = self._waiters.pop(ref, None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(outcome)
                for ref, body in events:
                    queue = self._events.get(ref)
                    if queue is not None:
                        queue.put_nowait(body)
        except asyncio.CancelledError:
            self._fail_pending("the client stopped reading")
            raise
        except Exception as exc:
            log.exception("the reader of %s stopped", self.node)
            self._fail_pending(f"the client stopped reading: {exc!r}")

    def _fail_pending(self, why: str) -> None:
        """Fail every pending request and live watch with RequestError(closed)."""
        waiters, self._waiters = self._waiters, {}
        for waiter in waiters.values():
            if not waiter.done():
                waiter.set_result(RequestError(E_CLOSED, why))
        for queue in self._events.values():
            queue.put_nowait(RequestError(E_CLOSED, why))

    async def _send(self, frame: bytes) -> None:
        """Queue ``frame``, waiting up to the timeout for room (a node that is down)."""
        try:
            await asyncio.wait_for(self._sock.send(frame), self.timeout)
        except TimeoutError:
            raise RequestError(
                E_TIMEOUT, f"cannot send to {self.node}: the node is not reading (down?)"
            ) from None

    async def _send_and_wait(self, ref: int, frame: bytes, timeout: float | None = None) -> Any:
        if self._closed:
            raise RequestError(E_CLOSED, "the client is closed")
        self._ensure_reader()
        waiter = self._waiters[ref] = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(self.timeout if timeout is None else timeout):
                await self._sock.send(frame)
                outcome = await waiter
        except TimeoutError:
            raise RequestError(E_TIMEOUT, f"no answer from {self.node} in time") from None
        finally:
            if self._waiters.get(ref) is waiter:
                del self._waiters[ref]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def request(self, op: str, /, *, _timeout: float | None = None, **args: Any) -> Any:
        """Send one API request (``args`` are its arguments) and wait for its reply."""
        ref = self._proto.ref()
        return await self._send_and_wait(ref, self._proto.request_frame(ref, op, args), _timeout)

    async def publish(
        self, topic: str, data: bytes | str, ack: bool | str = True
    ) -> PublishResult | None:
        """Publish one message and wait for its acknowledgement at level ``ack``.

        ``ack``: "owner" (or True), "replicated", "none" (or False); see ``Client.publish``.
        """
        level = ack_level(ack)
        ref = self._proto.ref() if level else 0
        frame = self._proto.publish_frame([publish_entry(ref, topic, to_bytes(data), level)])
        if not level:
            await self._send(frame)
            return None
        return await self._send_and_wait(ref, frame)

    async def subscribe(
        self,
        *topics: str,
        prefix: bool = False,
        rcvhwm: int = DEFAULT_RCVHWM,
        recover: bool = True,
        since: int | None = None,
    ) -> AsyncSubscription:
        """Subscribe to exact topics (or prefixes); returns once the owners know it.

        ``rcvhwm``, ``recover`` and ``since``: see ``Client.subscribe``.
        """
        if since is not None and (prefix or since < 0):
            raise ValueError("since needs exact topics and a seq >= 0")
        plan = SubscribePlan.make(list(topics), prefix)
        sock = self._ctx.socket(zmq.SUB)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RCVHWM, rcvhwm)
            info = await self.info()
            sock.connect(reachable_pub(info["endpoints"]["pub"], self.node))
            for group in plan.groups:
                sock.subscribe(group)
            sock.subscribe(plan.token_subscription)
            await self.request("ready", **plan.ready_args)
            sock.unsubscribe(plan.token_subscription)
            subscription = AsyncSubscription(
                sock, plan.groups, self._drive if recover or since is not None else None
            )
            if since is not None:
                for topic in dict.fromkeys(topics):
                    entries = await self._drive(fetching(Pager.make(topic, since=since)))
                    subscription.replay(topic, entries)
        except BaseException:
            sock.close()
            raise
        return subscription

    async def history(self, topic: str, **args: Any) -> dict[str, Any]:
        """One page of ``topic``'s stored messages (docs/PROTOCOL.md §7.9)."""
        return await self.request("history", topic=topic, **args)

    async def _drive(self, steps: Generator[Step, dict | None, Any]) -> Any:
        """Carry out a recovery's steps (zdps.client.recovery); its result."""
        try:
            step = next(steps)
            while True:
                if isinstance(step, dict):
                    try:
                        reply = await self.request("history", **step)
                    except RequestError as exc:
                        log.debug("history of %s: %s", step["topic"], exc)
                        reply = None
                    step = steps.send(reply)
                else:
                    await asyncio.sleep(step)
                    step = next(steps)
        except StopIteration as done:
            return done.value

    async def create_topic(self, topic: str, history: int, ttl: float) -> None:
        """Set ``topic``'s retention (see ``Client.create_topic``)."""
        await self.request("create", topic=topic, history=history, ttl=ttl)

    async def info(self) -> dict[str, Any]:
        if self._info is None:
            self._info = await self.request("info")
        return self._info

    async def status(self) -> dict[str, Any]:
        return await self.request("status")

    async def members(self, topic: str) -> dict[str, Any]:
        return await self.request("members", topic=topic)

    async def watch(self, topic: str) -> AsyncIterator[dict[str, Any]]:
        """The members of ``topic`` now, then again after every change.

        Closing the generator (``aclose``) or the client sends ``unwatch`` to the node.
        """
        ref = self._proto.ref()
        queue: asyncio.Queue = asyncio.Queue()
        self._events[ref] = queue
        try:
            yield await self._send_and_wait(
                ref, self._proto.request_frame(ref, "watch", {"topic": topic})
            )
            while True:
                body = await queue.get()
                if isinstance(body, Exception):
                    raise body
                yield body
        finally:
            if self._events.pop(ref, None) is not None and not self._closed:
                self._unwatch(ref)

    def _unwatch(self, ref: int) -> None:
        """Tell the node to end watch ``ref``, without waiting (its reply is dropped)."""
        frame = self._proto.request_frame(self._proto.ref(), "unwatch", {"ref": ref})
        # Not awaited: with NOBLOCK the future is settled at once, or queued behind the
        # sends already waiting; either way its outcome is only retrieved.
        with contextlib.suppress(zmq.ZMQError):
            self._sock.send(frame, zmq.NOBLOCK).add_done_callback(_retrieve)

    async def delete_topic(self, topic: str) -> PublishResult:
        return await self.request("delete", topic=topic)

    async def close(self) -> None:
        """Close the connection: pending requests fail at once, live watches end."""
        if self._closed:
            return
        self._closed = True
        for ref in list(self._events):
            self._unwatch(ref)
        self._fail_pending("the client was closed")
        self._events.clear()
        reader, self._reader = self._reader, None
        if reader is not None and not reader.done():
            if self._reader_loop is asyncio.get_running_loop():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            else:
                with contextlib.suppress(RuntimeError):  # its loop may be closed already
                    reader.cancel()
        self._sock.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


class AsyncSubscription:
    """Messages of a subscription, as an async iterator."""

    def __init__(
        self,
        sock: zmq.asyncio.Socket,
        groups: list[bytes],
        drive: Callable[[Generator], Awaitable[Any]] | None = None,
    ) -> None:
        self._sock = sock
        self._drive = drive  # carries out recoveries; None: no recovery
        self._inbox = Inbox(groups, recover=drive is not None)
        self._reconnects = Reconnects(sock)

    @property
    def ended(self) -> bool:
        return self._inbox.ended

    def replay(self, topic: str, entries: list[list] | None) -> None:
        self._inbox.replay(topic, entries)

    async def recv(self) -> Delivery | None:
        """The next message or gap, or None once every exact topic was deleted."""
        inbox = self._inbox
        while not inbox.ready:
            if inbox.ended:
                return None
            if not await self._sock.poll(IDLE_CHECK * 1000):
                self._reconnects.check(self._sock, inbox.state.groups())
                continue
            message = decode_delivery(await self._sock.recv_multipart())
            fetch = inbox.live(message)
            while inbox.unsubscribe:
                self._sock.unsubscribe(inbox.unsubscribe.pop())
            if fetch is not None and self._drive is not None:
                steps = recovering(inbox.recovery, message, fetch)
                inbox.ready.extend(await self._drive(steps))
        return inbox.ready.popleft()

    def __aiter__(self) -> AsyncSubscription:
        return self

    async def __anext__(self) -> Delivery:
        message = await self.recv()
        if message is None:
            raise StopAsyncIteration
        return message

    def close(self) -> None:
        self._reconnects.close()
        self._sock.close()
