"""The asyncio client: the same operations as ``Client``, awaited."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import zmq
import zmq.asyncio

from zdps.client.protocol import (
    ClientProtocol,
    Message,
    PublishResult,
    RequestError,
    SubscribePlan,
    SubscriptionState,
    decode_delivery,
    node_endpoint,
    to_bytes,
)
from zdps.wire import E_TIMEOUT


class AsyncClient:
    """A connection to one node's API socket, for use inside one asyncio event loop."""

    def __init__(self, node: str | None = None, timeout: float = 10.0) -> None:
        self.node = node_endpoint(node)
        self.timeout = timeout
        self._ctx = zmq.asyncio.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 1000)
        self._sock.connect(self.node)
        self._proto = ClientProtocol()
        self._waiters: dict[int, asyncio.Future] = {}
        self._events: dict[int, asyncio.Queue] = {}
        self._reader: asyncio.Task | None = None
        self._info: dict[str, Any] | None = None

    async def _read(self) -> None:
        while True:
            outcomes, events = self._proto.parse(await self._sock.recv())
            for ref, outcome in outcomes:
                waiter = self._waiters.pop(ref, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(outcome)
            for ref, body in events:
                queue = self._events.get(ref)
                if queue is not None:
                    queue.put_nowait(body)

    async def _send_and_wait(self, ref: int, frame: bytes) -> Any:
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read())
        waiter = self._waiters[ref] = asyncio.get_running_loop().create_future()
        await self._sock.send(frame)
        try:
            outcome = await asyncio.wait_for(waiter, self.timeout)
        except TimeoutError:
            self._waiters.pop(ref, None)
            raise RequestError(E_TIMEOUT, f"no answer from {self.node} in time") from None
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def request(self, op: str, **args: Any) -> Any:
        ref = self._proto.ref()
        return await self._send_and_wait(ref, self._proto.request_frame(ref, op, args))

    async def publish(
        self, topic: str, data: bytes | str, ack: bool = True
    ) -> PublishResult | None:
        """Publish one message; with ``ack`` wait until the owner has sequenced it."""
        ref = self._proto.ref() if ack else 0
        frame = self._proto.publish_frame([[ref, topic, to_bytes(data)]])
        if not ack:
            await self._sock.send(frame)
            return None
        return await self._send_and_wait(ref, frame)

    async def subscribe(self, *topics: str, prefix: bool = False) -> AsyncSubscription:
        """Subscribe to exact topics (or prefixes); returns once the owners know it."""
        plan = SubscribePlan.make(list(topics), prefix)
        info = await self.info()
        sock = self._ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
        sock.connect(info["endpoints"]["pub"])
        for group in plan.groups:
            sock.subscribe(group)
        sock.subscribe(plan.token_subscription)
        try:
            await self.request("ready", **plan.ready_args)
        except BaseException:
            sock.close()
            raise
        sock.unsubscribe(plan.token_subscription)
        return AsyncSubscription(sock, plan.groups)

    async def info(self) -> dict[str, Any]:
        if self._info is None:
            self._info = await self.request("info")
        return self._info

    async def status(self) -> dict[str, Any]:
        return await self.request("status")

    async def members(self, topic: str) -> dict[str, Any]:
        return await self.request("members", topic=topic)

    async def watch(self, topic: str) -> AsyncIterator[dict[str, Any]]:
        """The members of ``topic`` now, then again after every change."""
        ref = self._proto.ref()
        queue = self._events[ref] = asyncio.Queue()
        try:
            yield await self._send_and_wait(
                ref, self._proto.request_frame(ref, "watch", {"topic": topic})
            )
            while True:
                yield await queue.get()
        finally:
            self._events.pop(ref, None)

    async def delete_topic(self, topic: str) -> PublishResult:
        return await self.request("delete", topic=topic)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._sock.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()


class AsyncSubscription:
    """Messages of a subscription, as an async iterator."""

    def __init__(self, sock: zmq.asyncio.Socket, groups: list[bytes]) -> None:
        self._sock = sock
        self._state = SubscriptionState(groups)

    @property
    def ended(self) -> bool:
        return self._state.ended

    async def recv(self) -> Message | None:
        """The next message, or None once every exact topic was deleted."""
        while not self._state.ended:
            message = decode_delivery(await self._sock.recv_multipart())
            if message.type != "closed":
                return message
            if self._state.closed(message.topic):
                self._sock.unsubscribe(message.topic.encode() + b"\x00")
        return None

    def __aiter__(self) -> AsyncSubscription:
        return self

    async def __anext__(self) -> Message:
        message = await self.recv()
        if message is None:
            raise StopAsyncIteration
        return message

    def close(self) -> None:
        self._sock.close()
