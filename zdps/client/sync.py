"""The blocking client: publish, subscribe, members, status, topic deletion."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import zmq

from zdps.client.protocol import (
    ClientProtocol,
    Message,
    PublishError,
    PublishResult,
    RequestError,
    SubscribePlan,
    SubscriptionState,
    decode_delivery,
    node_endpoint,
    to_bytes,
)
from zdps.wire import E_TIMEOUT


class Client:
    """A connection to one node's API socket.

    ``node`` is the API endpoint (default: ``$ZDPS_NODE``, else the local node).
    Not thread-safe: use one Client per thread.
    """

    def __init__(
        self, node: str | None = None, timeout: float = 10.0, context: zmq.Context | None = None
    ) -> None:
        self.node = node_endpoint(node)
        self.timeout = timeout
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 1000)
        self._sock.connect(self.node)
        self._proto = ClientProtocol()
        self._outcomes: dict[int, Any] = {}
        self._events: dict[int, deque] = {}
        self._info: dict[str, Any] | None = None

    # ------------------------------------------------------------------ plumbing

    def _pump(self, timeout: float | None) -> bool:
        """Read every frame that arrives within ``timeout``; False if none did."""
        if not self._sock.poll(None if timeout is None else max(0, int(timeout * 1000))):
            return False
        while True:
            try:
                frame = self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return True
            outcomes, events = self._proto.parse(frame)
            self._outcomes.update(outcomes)
            for ref, body in events:
                self._events.setdefault(ref, deque()).append(body)

    def _wait(self, ref: int, timeout: float | None = None) -> Any:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while ref not in self._outcomes:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RequestError(E_TIMEOUT, f"no answer from {self.node} in time")
            self._pump(left)
        outcome = self._outcomes.pop(ref)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def request(self, op: str, timeout: float | None = None, **args: Any) -> Any:
        """Send one API request and wait for its reply."""
        ref = self._proto.ref()
        self._sock.send(self._proto.request_frame(ref, op, args))
        return self._wait(ref, timeout)

    # ------------------------------------------------------------------ publishing

    def publish(self, topic: str, data: bytes | str, ack: bool = True) -> PublishResult | None:
        """Publish one message; with ``ack`` wait until the owner has sequenced it."""
        ref = self._proto.ref() if ack else 0
        self._sock.send(self._proto.publish_frame([[ref, topic, to_bytes(data)]]))
        return self._wait(ref) if ack else None

    def publish_many(
        self,
        messages: Iterable[tuple[str, bytes | str]],
        ack: bool = True,
        window: int = 1000,
        batch: int = 1,
    ) -> Iterator[PublishResult | PublishError]:
        """Publish a stream, keeping up to ``window`` unacknowledged; yields each outcome.

        Up to ``batch`` messages travel in one frame (the node routes them as a batch);
        a frame leaves once it is full, so with an iterator that blocks (a pipe, a
        socket) keep ``batch`` at 1 for latency. Outcomes come in acknowledgement
        order; a failed publish yields its PublishError instead of raising, so one bad
        message does not stop the stream.
        """
        inflight: set[int] = set()
        entries: list[list] = []
        for topic, data in messages:
            ref = self._proto.ref() if ack else 0
            entries.append([ref, topic, to_bytes(data)])
            if ack:
                inflight.add(ref)
            if len(entries) >= batch:
                self._sock.send(self._proto.publish_frame(entries))
                entries = []
                if ack:
                    yield from self._collect(inflight, block=len(inflight) >= window)
        if entries:
            self._sock.send(self._proto.publish_frame(entries))
        while inflight:
            before = len(inflight)
            yield from self._collect(inflight, block=True)
            if len(inflight) == before:
                for ref in sorted(inflight):
                    yield PublishError(E_TIMEOUT, f"no acknowledgement for publish #{ref}")
                return

    def publish_stream(
        self,
        messages: Iterable[tuple[str, bytes | str]],
        window: int = 20_000,
        batch: int = 256,
    ) -> StreamResult:
        """Publish a stream with acks, counting them instead of returning one per message.

        The fastest way to publish many messages: up to ``batch`` per frame and
        ``window`` unacknowledged; acks arrive as runs and are only counted. Returns
        how many were acknowledged and every failure. Frames leave once full (see
        ``publish_many`` about iterators that block).
        """
        result = StreamResult()
        sent = 0
        entries: list[list] = []
        proto, send = self._proto, self._sock.send
        for topic, data in messages:
            entries.append([proto.ref(), topic, data if type(data) is bytes else to_bytes(data)])
            if len(entries) >= batch:
                send(proto.publish_frame(entries))
                sent += len(entries)
                entries = []
                self._count_acks(result, block=sent - result.done >= window)
        if entries:
            send(proto.publish_frame(entries))
            sent += len(entries)
        while result.done < sent:
            if not self._count_acks(result, block=True):
                missing = sent - result.done
                result.failures.append(PublishError(E_TIMEOUT, f"{missing} publish(es) unacked"))
                break
        return result

    def _count_acks(self, result: StreamResult, block: bool) -> bool:
        """Fold the acks and nacks that arrived into ``result``; False if none came."""
        if not self._sock.poll(int(self.timeout * 1000) if block else 0):
            return False
        while True:
            try:
                frame = self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return True
            acked, failures, outcomes, events = self._proto.parse_stream(frame)
            result.acked += acked
            result.failures += failures
            self._outcomes.update(outcomes)
            for ref, body in events:
                self._events.setdefault(ref, deque()).append(body)

    def _collect(self, inflight: set[int], block: bool) -> Iterator[PublishResult | PublishError]:
        """Outcomes of ``inflight`` publishes that have arrived (waiting if ``block``)."""
        self._pump(self.timeout if block else 0)
        done = [ref for ref in self._outcomes if ref in inflight]
        for ref in done:
            inflight.discard(ref)
            yield self._outcomes.pop(ref)

    # ------------------------------------------------------------------ subscribing

    def subscribe(self, *topics: str, prefix: bool = False) -> Subscription:
        """Subscribe to exact topics (or prefixes); returns once the owners know it."""
        plan = SubscribePlan.make(list(topics), prefix)
        sock = self._ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
        sock.connect(self.info()["endpoints"]["pub"])
        for group in plan.groups:
            sock.subscribe(group)
        sock.subscribe(plan.token_subscription)
        try:
            self.request("ready", **plan.ready_args)
        except BaseException:
            sock.close()
            raise
        sock.unsubscribe(plan.token_subscription)
        return Subscription(sock, plan.groups)

    # ------------------------------------------------------------------ queries

    def info(self) -> dict[str, Any]:
        """The node's identity and endpoints (cached)."""
        if self._info is None:
            self._info = self.request("info")
        return self._info

    def status(self) -> dict[str, Any]:
        return self.request("status")

    def members(self, topic: str) -> dict[str, Any]:
        """``{"topic", "owner", "nodes": {node: subscribers}}`` as this node sees it."""
        return self.request("members", topic=topic)

    def watch(self, topic: str) -> Iterator[dict[str, Any]]:
        """The members of ``topic`` now, then again after every change."""
        ref = self._proto.ref()
        self._sock.send(self._proto.request_frame(ref, "watch", {"topic": topic}))
        yield self._wait(ref)
        queue = self._events.setdefault(ref, deque())
        while True:
            while not queue:
                self._pump(None)
            yield queue.popleft()

    def delete_topic(self, topic: str) -> PublishResult:
        """End every subscription to ``topic`` with a final ``closed`` message."""
        ref = self._proto.ref()
        self._sock.send(self._proto.request_frame(ref, "delete", {"topic": topic}))
        return self._wait(ref)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


@dataclass(slots=True)
class StreamResult:
    """What ``publish_stream`` achieved: acknowledged messages and every failure."""

    acked: int = 0
    failures: list[PublishError] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.acked + len(self.failures)


class Subscription:
    """Messages of a subscription, in the order each topic's owner sequenced them."""

    def __init__(self, sock: zmq.Socket, groups: list[bytes]) -> None:
        self._sock = sock
        self._state = SubscriptionState(groups)

    @property
    def ended(self) -> bool:
        """True once every exact topic was deleted (prefix subscriptions never end)."""
        return self._state.ended

    def recv(self, timeout: float | None = None) -> Message | None:
        """The next message; None on timeout or once the subscription has ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._state.ended:
            left = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if not self._sock.poll(left):
                return None
            message = decode_delivery(self._sock.recv_multipart())
            if message.type != "closed":
                return message
            if self._state.closed(message.topic):
                self._sock.unsubscribe(message.topic.encode() + b"\x00")
        return None

    def __iter__(self) -> Iterator[Message]:
        while (message := self.recv()) is not None:
            yield message

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
