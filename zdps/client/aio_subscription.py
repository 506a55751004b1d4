"""An asyncio subscription: the messages of a SUB socket, as an async iterator, with
the same recovery, gaps and order as the sync ``Subscription`` (zdps/client/sync.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator

import zmq
import zmq.asyncio

from zdps.client.protocol import Batch
from zdps.client.recovery import Delivery
from zdps.client.sockets import IDLE_CHECK, SubscriptionSocket, recv_delivery, without_asyncio
from zdps.client.subscription import Inbox


class AsyncSubscription(SubscriptionSocket):
    """Messages of a subscription, as an async iterator."""

    def __init__(
        self,
        sock: zmq.asyncio.Socket,
        inbox: Inbox,
        recover: Callable[[Generator], Awaitable],
        batches: bool = False,
    ) -> None:
        super().__init__(sock, inbox, recover, batches)
        self._reads = without_asyncio(sock)  # after an awaited poll, nothing waits

    async def recv(self) -> Delivery | None:
        """The next message or gap, or None once every exact topic was deleted."""
        return await self._next(whole=False)  # type: ignore[return-value]

    async def recv_batch(self) -> Batch | Delivery | None:
        """The next batch as it arrived (see ``Subscription.recv_batch``)."""
        return await self._next(whole=True)

    async def _next(self, whole: bool) -> Batch | Delivery | None:
        inbox = self._inbox
        while not inbox.ready:
            if inbox.ended:
                return None
            if not await self._sock.poll(IDLE_CHECK * 1000):
                if (catching_up := self._idle()) is not None:
                    await self._recover(catching_up)
                continue
            recovery = self._arrived(recv_delivery(self._reads, zmq.NOBLOCK))
            if recovery is not None:
                await self._recover(recovery)
        return inbox.take(whole)

    def __aiter__(self) -> AsyncSubscription:
        return self

    async def __anext__(self) -> Delivery:
        message = await self.recv()
        if message is None:
            raise StopAsyncIteration
        return message
