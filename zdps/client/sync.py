"""The blocking client: publish, subscribe, members, status, topic deletion."""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import zmq

from zdps.client.protocol import (
    DEFAULT_RCVHWM,
    IDLE_CHECK,
    ClientProtocol,
    PublishError,
    PublishResult,
    Reconnects,
    RequestError,
    StreamLedger,
    SubscribePlan,
    ack_level,
    decode_delivery,
    node_endpoint,
    publish_entry,
    reachable_pub,
    recv_delivery,
    to_bytes,
)
from zdps.client.recovery import Delivery, Inbox, Pager, Step, fetching, recovering
from zdps.wire import E_TIMEOUT, ProtocolError

log = logging.getLogger("zdps.client")
_END: Any = object()  # the end of a stream of messages


def _ms(seconds: float) -> int:
    """Milliseconds for ``poll``, rounded up so that a short wait is not a busy loop."""
    return max(0, math.ceil(seconds * 1000))


def _open_dealer(ctx: zmq.Context, node: str) -> zmq.Socket:
    """A DEALER connected to ``node``; a bad endpoint raises ValueError, leaking nothing."""
    sock = ctx.socket(zmq.DEALER)
    try:
        sock.setsockopt(zmq.LINGER, 1000)
        sock.connect(node)
    except zmq.ZMQError as exc:
        sock.close(0)
        raise ValueError(f"cannot connect to node endpoint {node!r}: {exc}") from None
    return sock


class Client:
    """A connection to one node's API socket.

    ``node`` is the API endpoint (default: ``$ZDPS_NODE``, else the local node); an
    endpoint ZeroMQ cannot connect to raises ValueError. ``timeout`` bounds every
    wait: for a reply, and for room to send when the node is not reading (a node that
    is down). Not thread-safe: use one Client per thread.
    """

    def __init__(
        self, node: str | None = None, timeout: float = 10.0, context: zmq.Context | None = None
    ) -> None:
        self.node = node_endpoint(node)
        self.timeout = timeout
        self._ctx = context or zmq.Context.instance()
        self._sock = _open_dealer(self._ctx, self.node)
        self._proto = ClientProtocol()
        self._pending: set[int] = set()  # refs somebody waits for
        self._outcomes: dict[int, Any] = {}  # their outcomes, in arrival order
        self._events: dict[int, deque] = {}  # live watches: ref -> events not yet read
        self._ledger: StreamLedger | None = None  # the publish_stream running, if any
        self._info: dict[str, Any] | None = None
        self._last_rx = time.monotonic()  # when the node last sent us anything
        self._closed = False
        self.bad_frames = 0  # frames from the node that could not be parsed (skipped)

    # ------------------------------------------------------------------ plumbing

    def _absorb(self, frame: bytes) -> None:
        """File one frame from the node: outcomes of awaited refs, events of live watches."""
        self._last_rx = time.monotonic()
        try:
            if self._ledger is not None:
                outcomes, events = self._proto.parse_stream(frame, self._ledger)
            else:
                outcomes, events = self._proto.parse(frame)
        except ProtocolError as exc:
            self.bad_frames += 1
            log.warning("skipped a bad frame from %s: %s", self.node, exc)
            return
        for ref, outcome in outcomes:
            # Nobody waits for a ref that timed out: its late outcome is dropped.
            if ref in self._pending:
                self._outcomes[ref] = outcome
        for ref, body in events:
            queue = self._events.get(ref)
            if queue is not None:
                queue.append(body)

    def _drain(self) -> None:
        """Read every frame that has already arrived."""
        while True:
            try:
                frame = self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._absorb(frame)

    def _pump(self, timeout: float | None) -> bool:
        """Read every frame that arrives within ``timeout``; False if none did."""
        if not self._sock.poll(None if timeout is None else _ms(timeout)):
            return False
        self._drain()
        return True

    def _send(self, frame: bytes, deadline: float) -> None:
        """Queue ``frame`` for the node, waiting until ``deadline`` for room.

        The DEALER queues up to its high-water mark while the node is down; after
        that there is room only once the node reads. Raises RequestError(timeout).
        """
        sock = self._sock
        while True:
            try:
                sock.send(frame, zmq.NOBLOCK)
                return
            except zmq.Again:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                raise RequestError(
                    E_TIMEOUT, f"cannot send to {self.node}: the node is not reading (down?)"
                )
            if sock.poll(_ms(left), zmq.POLLIN | zmq.POLLOUT) & zmq.POLLIN:
                self._drain()

    def _wait(self, ref: int, deadline: float) -> Any:
        """The outcome of ``ref`` (raised if it is an error), waiting until ``deadline``."""
        try:
            while ref not in self._outcomes:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RequestError(E_TIMEOUT, f"no answer from {self.node} in time")
                self._pump(left)
            outcome = self._outcomes.pop(ref)
        finally:
            self._pending.discard(ref)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def _roundtrip(self, ref: int, frame: bytes, timeout: float | None = None) -> Any:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self._pending.add(ref)
        try:
            self._send(frame, deadline)
        except BaseException:
            self._pending.discard(ref)
            raise
        return self._wait(ref, deadline)

    def request(self, op: str, /, *, _timeout: float | None = None, **args: Any) -> Any:
        """Send one API request (``args`` are its arguments) and wait for its reply.

        ``_timeout`` overrides the client's timeout for this request.
        """
        ref = self._proto.ref()
        return self._roundtrip(ref, self._proto.request_frame(ref, op, args), _timeout)

    # ------------------------------------------------------------------ publishing

    def publish(
        self, topic: str, data: bytes | str, ack: bool | str = True
    ) -> PublishResult | None:
        """Publish one message and wait for its acknowledgement at level ``ack``.

        ``ack``: "owner" (or True) waits until the owner sequenced it, "replicated"
        until its replicas stored it too, "none" (or False) does not wait.
        """
        level = ack_level(ack)
        if not level:
            frame = self._proto.publish_frame([[0, topic, to_bytes(data)]])
            self._send(frame, time.monotonic() + self.timeout)
            return None
        ref = self._proto.ref()
        frame = self._proto.publish_frame([publish_entry(ref, topic, to_bytes(data), level)])
        return self._roundtrip(ref, frame)

    def publish_many(
        self,
        messages: Iterable[tuple[str, bytes | str]],
        ack: bool | str = True,
        window: int = 1000,
        batch: int = 1,
    ) -> Iterator[PublishResult | PublishError]:
        """Publish a stream, keeping at most ``window`` unacknowledged; yields each outcome.

        Up to ``batch`` messages travel in one frame (the node routes them as a batch);
        a frame leaves once it is full, so with an iterator that blocks (a pipe, a
        socket) keep ``batch`` at 1 for latency. Outcomes are yielded in the order
        they are settled: acks and nacks in the order they arrive (across topics this
        need not be publish order), and a PublishError(timeout) for a publish not
        acknowledged within the client's timeout of being sent. A failed publish
        yields its PublishError instead of raising, so one bad message does not stop
        the stream. Without ``ack`` nothing is yielded unless a frame cannot be sent.

        The stream stops early (the rest of ``messages`` is not read) when the node
        is unreachable: when a frame cannot be sent within the timeout (its messages
        are yielded as timeouts), or when a publish times out and the node has sent
        nothing at all since it was sent.
        """
        if window < 1 or batch < 1:
            raise ValueError("window and batch must be at least 1")
        level = ack_level(ack)
        timeout = self.timeout
        inflight: OrderedDict[int, float] = OrderedDict()  # ref -> sent at, oldest first
        entries: list[list] = []
        unreachable = False

        def flush() -> list[PublishError]:
            """Send ``entries``; the errors of the messages that could not be sent."""
            nonlocal unreachable
            refs = [entry[0] for entry in entries if entry[0]]
            self._pending.update(refs)  # acks read while waiting to send are kept
            now = time.monotonic()
            try:
                self._send(self._proto.publish_frame(entries), now + timeout)
            except RequestError as exc:
                self._pending.difference_update(refs)
                unreachable = True
                return [PublishError(E_TIMEOUT, f"not sent: {exc.message}") for _ in entries]
            finally:
                entries.clear()
            for ref in refs:
                inflight[ref] = now
            return []

        def settled(block: bool) -> Iterator[PublishResult | PublishError]:
            """Outcomes that arrived (waiting for one if ``block``), then expiries."""
            nonlocal unreachable
            if block:
                self._pump(next(iter(inflight.values())) + timeout - time.monotonic())
            else:
                self._drain()
            for ref in [ref for ref in self._outcomes if ref in inflight]:
                del inflight[ref]
                self._pending.discard(ref)
                yield self._outcomes.pop(ref)
            now = time.monotonic()
            while inflight:
                ref, sent_at = next(iter(inflight.items()))
                if sent_at + timeout > now:
                    break
                del inflight[ref]
                self._pending.discard(ref)
                if self._last_rx < sent_at:
                    unreachable = True
                yield PublishError(
                    E_TIMEOUT, f"no acknowledgement for publish #{ref} within {timeout:g} s"
                )

        source = iter(messages)
        try:
            while not unreachable:
                # Room in the window first, so that no message is read and then dropped.
                while level and len(inflight) + len(entries) >= window and not unreachable:
                    if entries:
                        yield from flush()
                    else:
                        yield from settled(block=True)
                if unreachable or (item := next(source, _END)) is _END:
                    break
                topic, data = item
                ref = self._proto.ref() if level else 0
                entries.append(publish_entry(ref, topic, to_bytes(data), level))
                if len(entries) >= batch:
                    yield from flush()
                    if inflight:
                        yield from settled(block=False)
            if entries:
                yield from flush()
            while inflight:
                yield from settled(block=True)
        finally:
            # Closed early (or interrupted): late outcomes of these refs are dropped.
            for ref in inflight:
                self._pending.discard(ref)
                self._outcomes.pop(ref, None)

    def publish_stream(
        self,
        messages: Iterable[tuple[str, bytes | str]],
        window: int = 20_000,
        batch: int = 256,
        ack: str = "owner",
    ) -> StreamResult:
        """Publish a stream with acks, counting them instead of returning one per message.

        The fastest way to publish many messages: up to ``batch`` per frame and at
        most ``window`` unacknowledged; acks arrive as runs and are only counted.
        Returns how many were acknowledged and every failure (one PublishError per
        message: nacked, or not acknowledged within the client's timeout of being
        sent). Frames leave once full (see ``publish_many`` about iterators that
        block), and the stream stops early when the node is unreachable, as in
        ``publish_many``. ``messages`` must not use this client. ``ack`` is "owner" or
        "replicated" (see ``publish``).
        """
        if window < 1 or batch < 1:
            raise ValueError("window and batch must be at least 1")
        level = ack_level(ack)
        if not level:
            raise ValueError("publish_stream counts acknowledgements: ack cannot be none")
        timeout = self.timeout
        ledger = StreamLedger()
        entries: list[list] = []
        proto = self._proto
        unreachable = False
        late = f"no acknowledgement within {timeout:g} s"

        def flush() -> None:
            nonlocal unreachable
            first = proto.reserve(len(entries))
            for i, entry in enumerate(entries):
                entry[0] = first + i
            now = time.monotonic()
            try:
                self._send(proto.publish_frame(entries), now + timeout)
            except RequestError as exc:
                ledger.failures += [PublishError(E_TIMEOUT, f"not sent: {exc.message}")] * len(
                    entries
                )
                unreachable = True
            else:
                ledger.add(first, len(entries), now + timeout)
            entries.clear()

        def wait() -> None:
            nonlocal unreachable
            deadline = ledger.oldest_deadline()
            if deadline is None:
                return
            self._pump(deadline - time.monotonic())
            for expired in ledger.expire(time.monotonic(), late):
                if self._last_rx < expired - timeout:
                    unreachable = True

        source = iter(messages)
        self._ledger = ledger
        try:
            while not unreachable:
                while ledger.unsettled + len(entries) >= window and not unreachable:
                    if entries:
                        flush()
                    else:
                        wait()
                if unreachable or (item := next(source, _END)) is _END:
                    break
                topic, data = item
                payload = data if type(data) is bytes else to_bytes(data)
                entries.append(publish_entry(0, topic, payload, level))
                if len(entries) >= batch:
                    flush()
                    self._drain()
            if entries:
                flush()
            while ledger.unsettled:
                wait()
        finally:
            self._ledger = None
        return StreamResult(ledger.acked, ledger.failures)

    # ------------------------------------------------------------------ subscribing

    def subscribe(
        self,
        *topics: str,
        prefix: bool = False,
        rcvhwm: int = DEFAULT_RCVHWM,
        recover: bool = True,
        since: int | None = None,
    ) -> Subscription:
        """Subscribe to exact topics (or prefixes); returns once the owners know it.

        With ``recover`` (the default), messages missed in a gap of ``seq``, across a
        reconnect or at an epoch change are fetched from the topic's history and
        delivered in order before newer ones; what history no longer holds is
        reported by a ``Gap`` (see zdps.client.recovery). Without it, messages come
        exactly as the node's PUB sends them.

        ``since``: first replay each exact topic's history from that seq of its newest
        epoch (0: all of it), then go on live; implies ``recover``.

        ``rcvhwm`` is how many messages the subscription queues in this process;
        beyond that and the node's ``pub_hwm``, the node drops messages for it (a gap
        in ``seq``, recovered from history when ``recover`` is on).
        """
        if since is not None and (prefix or since < 0):
            raise ValueError("since needs exact topics and a seq >= 0")
        plan = SubscribePlan.make(list(topics), prefix)
        sock = self._ctx.socket(zmq.SUB)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RCVHWM, rcvhwm)
            sock.connect(reachable_pub(self.info()["endpoints"]["pub"], self.node))
            for group in plan.groups:
                sock.subscribe(group)
            sock.subscribe(plan.token_subscription)
            self.request("ready", **plan.ready_args)
            sock.unsubscribe(plan.token_subscription)
            subscription = Subscription(
                sock, plan.groups, self._drive if recover or since is not None else None
            )
            if since is not None:
                for topic in dict.fromkeys(topics):
                    entries = self._drive(fetching(Pager.make(topic, since=since)))
                    subscription.replay(topic, entries)
        except BaseException:
            sock.close()
            raise
        return subscription

    def history(self, topic: str, **args: Any) -> dict[str, Any]:
        """One page of ``topic``'s stored messages (docs/PROTOCOL.md §7.9)."""
        return self.request("history", topic=topic, **args)

    def _drive(self, steps: Generator[Step, dict | None, Any]) -> Any:
        """Carry out a recovery's steps (zdps.client.recovery); its result."""
        try:
            step = next(steps)
            while True:
                if isinstance(step, dict):
                    try:
                        reply = self.request("history", **step)
                    except RequestError as exc:
                        log.debug("history of %s: %s", step["topic"], exc)
                        reply = None
                    step = steps.send(reply)
                else:
                    time.sleep(step)
                    step = next(steps)
        except StopIteration as done:
            return done.value

    def create_topic(self, topic: str, history: int, ttl: float) -> None:
        """Set ``topic``'s retention: at most ``history`` messages, none older than ``ttl`` s."""
        self.request("create", topic=topic, history=history, ttl=ttl)

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
        """The members of ``topic`` now, then again after every change.

        Closing the generator (or the client) sends ``unwatch`` to the node.
        """
        ref = self._proto.ref()
        queue: deque = deque()
        self._events[ref] = queue
        try:
            yield self._roundtrip(ref, self._proto.request_frame(ref, "watch", {"topic": topic}))
            while True:
                while not queue:
                    self._pump(None)
                yield queue.popleft()
        finally:
            if self._events.pop(ref, None) is not None and not self._closed:
                self._unwatch(ref)

    def _unwatch(self, ref: int) -> None:
        """Tell the node to end watch ``ref``, without waiting (its reply is dropped)."""
        try:
            frame = self._proto.request_frame(self._proto.ref(), "unwatch", {"ref": ref})
            self._sock.send(frame, zmq.NOBLOCK)
        except zmq.ZMQError:  # no room (the node is down) or socket closed: nothing to end
            pass

    def delete_topic(self, topic: str) -> PublishResult:
        """End every subscription to ``topic`` with a final ``closed`` message."""
        ref = self._proto.ref()
        return self._roundtrip(ref, self._proto.request_frame(ref, "delete", {"topic": topic}))

    def close(self) -> None:
        """Close the connection; live watches are ended at the node."""
        if self._closed:
            return
        self._closed = True
        for ref in list(self._events):
            self._unwatch(ref)
        self._events.clear()
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

    def __init__(
        self,
        sock: zmq.Socket,
        groups: list[bytes],
        drive: Callable[[Generator], Any] | None = None,
    ) -> None:
        self._sock = sock
        self._drive = drive  # carries out recoveries; None: no recovery
        self._inbox = Inbox(groups, recover=drive is not None)
        self._reconnects = Reconnects(sock)

    @property
    def ended(self) -> bool:
        """True once every exact topic was deleted (prefix subscriptions never end)."""
        return self._inbox.ended

    def replay(self, topic: str, entries: list[list] | None) -> None:
        self._inbox.replay(topic, entries)

    def recv(self, timeout: float | None = None) -> Delivery | None:
        """The next message or gap; None on timeout or once the subscription has ended."""
        inbox = self._inbox
        deadline = None if timeout is None else time.monotonic() + timeout
        while not inbox.ready:
            if inbox.ended:
                return None
            left = IDLE_CHECK if deadline is None else min(deadline - time.monotonic(), IDLE_CHECK)
            if not self._sock.poll(_ms(left)):
                self._reconnects.check(self._sock, inbox.state.groups())
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                continue
            message = decode_delivery(recv_delivery(self._sock))
            fetch = inbox.live(message)
            while inbox.unsubscribe:
                self._sock.unsubscribe(inbox.unsubscribe.pop())
            if fetch is not None and self._drive is not None:
                inbox.ready.extend(self._drive(recovering(inbox.recovery, message, fetch)))
        return inbox.ready.popleft()

    def __iter__(self) -> Iterator[Delivery]:
        while (message := self.recv()) is not None:
            yield message

    def close(self) -> None:
        self._reconnects.close()
        self._sock.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
