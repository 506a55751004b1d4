"""A subscription of the blocking client: messages in order, read by polling its SUB."""

from __future__ import annotations

import time
from collections.abc import Iterator

from zdps.client.protocol import Batch
from zdps.client.recovery import Delivery
from zdps.client.sockets import IDLE_CHECK, SubscriptionSocket, ms, recv_delivery


class Subscription(SubscriptionSocket):
    """Messages of a subscription, in the order each topic's owner sequenced them."""

    def recv(self, timeout: float | None = None) -> Delivery | None:
        """The next message or gap; None on timeout or once the subscription has ended."""
        return self._next(timeout, whole=False)  # type: ignore[return-value]

    def recv_batch(self, timeout: float | None = None) -> Batch | Delivery | None:
        """The next batch as it arrived (``subscribe(..., batches=True)``): a ``Batch``;
        a ``Message`` (one recovered from history, or a ``closed``) or a ``Gap`` where
        recovery had to look at messages one by one; None as for ``recv``."""
        return self._next(timeout, whole=True)

    def _next(self, timeout: float | None, whole: bool) -> Batch | Delivery | None:
        inbox = self._inbox
        deadline = None if timeout is None else time.monotonic() + timeout
        while not inbox.ready:
            if inbox.ended:
                return None
            left = IDLE_CHECK if deadline is None else min(deadline - time.monotonic(), IDLE_CHECK)
            if not self._sock.poll(ms(left)):
                if (catching_up := self._idle()) is not None:
                    self._recover(catching_up)
                if deadline is not None and time.monotonic() >= deadline and not inbox.ready:
                    return None
                continue
            recovery = self._arrived(recv_delivery(self._sock))
            if recovery is not None:
                self._recover(recovery)
        return inbox.take(whole)

    def __iter__(self) -> Iterator[Delivery]:
        while (message := self.recv()) is not None:
            yield message

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
