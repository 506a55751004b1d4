"""The blocking client: the session's operations (zdps/client/session.py), carried out
by polling one DEALER; each call returns once its operation is done."""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterable
from typing import Any

import zmq

from zdps.client import publishing
from zdps.client.consumer_member import ConsumerSubscription, consume_ops
from zdps.client.ledger import StreamResult
from zdps.client.protocol import (
    DEFAULT_RCVHWM,
    E_UNREACHABLE,
    STREAM_BATCH,
    PublishError,
    PublishResult,
    RequestError,
    ack_level,
    node_endpoint,
)
from zdps.client.queue_member import QueueSubscription, queue_ops, queue_subscriptions
from zdps.client.session import Session
from zdps.client.sockets import (
    CONNECT_CHECK,
    ms,
    open_dealer,
    open_sub,
    send_now,
    set_up,
)
from zdps.client.steps import Dial, Drain, Emit, Filter, Operation, Send, Sleep, Step, T, Wait
from zdps.client.subscription import SubscribePlan
from zdps.client.sync_subscription import Subscription
from zdps.keys import client_keys
from zdps.readiness import readable
from zdps.wire import api
from zdps.wire.api import Delete, Members, Status

log = logging.getLogger("zdps.client")


class Client:
    """A connection to one node's API socket.

    ``node`` is the API endpoint (default: ``$ZDPS_NODE``, else the local node); an
    endpoint ZeroMQ cannot connect to raises ValueError. ``timeout`` bounds every
    wait: for a reply, and for room to send when the node is not reading (a node that
    is down). ``curve_key`` (this client's secret key file) and ``server_key`` (the
    node's public key file), else ``$ZDPS_CURVE_KEY`` and ``$ZDPS_SERVER_KEY``: speak
    CURVE to a node that requires it (docs/PROTOCOL.md §2.1). Not thread-safe: use one
    Client per thread.
    """

    def __init__(
        self,
        node: str | None = None,
        timeout: float = 10.0,
        context: zmq.Context | None = None,
        curve_key: str | None = None,
        server_key: str | None = None,
    ) -> None:
        self.node = node_endpoint(node)
        self.timeout = timeout
        self._ctx = context or zmq.Context.instance()
        self._curve = client_keys(curve_key, server_key)
        self._sock, self._check = open_dealer(self._ctx, self.node, self._curve)
        self._session = Session(self.node)
        self._closed = False

    @property
    def bad_frames(self) -> int:
        """Frames from the node that could not be parsed (skipped)."""
        return self._session.bad_frames

    # ------------------------------------------------------------------ the driver

    def _run(self, steps: Operation[T], sub: zmq.Socket | None = None) -> T:
        """Carry out an operation that returns one result."""
        try:
            step = next(steps)
            while True:
                step = steps.send(self._do(step, sub))
        except StopIteration as done:
            return done.value
        finally:
            steps.close()
            self._send_outbox()

    def _iterate(self, steps: Operation[None]) -> Generator[Any, None, None]:
        """Carry out an operation that emits items; yields them as they come."""
        try:
            step = next(steps)
            while True:
                if type(step) is Emit:
                    yield from step.items
                    step = next(steps)
                else:
                    step = steps.send(self._do(step))
        except StopIteration:
            return
        finally:
            steps.close()
            self._send_outbox()

    def _do(self, step: Step, sub: zmq.Socket | None = None) -> Any:
        kind = type(step)
        if kind is Wait:
            return self._pump(step.until)
        if kind is Send:
            return self._send(step.frame, step.until)
        if kind is Drain:
            return self._drain()
        if kind is Sleep:
            return time.sleep(step.seconds)
        if sub is not None and (kind is Dial or kind is Filter):
            return set_up(sub, step)
        raise TypeError(f"{step!r} is not a step this operation may take")

    def _drain(self) -> None:
        """Take in every frame that has already arrived (a windowed publisher drains
        after every frame it sends, and mostly finds nothing: ``readable``)."""
        sock, absorb = self._sock, self._session.absorb
        while readable(sock):
            absorb(sock.recv(zmq.NOBLOCK))

    def _pump(self, until: float | None) -> None:
        """Take in the frames that arrive by ``until`` (None: wait for one, however long)."""
        timeout = None if until is None else ms(until - time.monotonic())
        if self._sock.poll(timeout):
            self._drain()

    def _send(self, frame: bytes, until: float) -> bool:
        """Queue ``frame``, waiting until ``until`` for room; False if there was none.

        The DEALER queues up to its high-water mark while the node is down; after
        that there is room only once the node reads.
        """
        sock = self._sock
        while True:
            try:
                sock.send(frame, zmq.NOBLOCK)
                return True
            except zmq.Again:
                pass
            left = until - time.monotonic()
            if left <= 0:
                return False
            if sock.poll(ms(left), zmq.POLLIN | zmq.POLLOUT) & zmq.POLLIN:
                self._drain()

    def _send_outbox(self) -> None:
        if self._session.outbox and not self._closed:
            send_now(self._sock, self._session.take_outbox())

    def _recover(self, steps: Generator) -> Any:
        """Carry out a recovery's steps (zdps.client.recovery); its result."""
        return self._run(self._session.serve(steps, self.timeout))

    # ------------------------------------------------------------------ requests

    def request(self, op: str, /, *, _timeout: float | None = None, **args: Any) -> Any:
        """Send one API request (``args`` are its arguments) and wait for its reply.

        ``_timeout`` overrides the client's timeout for this request.
        """
        timeout = self.timeout if _timeout is None else _timeout
        return self._run(self._session.request(op, args, timeout))

    def info(self) -> dict[str, Any]:
        """The node's identity and endpoints (cached)."""
        return self._run(self._session.info(self.timeout))

    def status(self) -> dict[str, Any]:
        return self._run(self._session.call(Status(), self.timeout))

    def drain(self, timeout: float | None = None) -> dict[str, Any]:
        """Ask the node to drain and leave (docs/PROTOCOL.md §4.5): it refuses publishes
        from now on, hands its history over within ``timeout`` s (default: its
        ``drain_timeout``), and answers with what it did before it leaves. Waits that
        long plus the client's timeout."""
        wait = (api.MAX_DRAIN_TIMEOUT if timeout is None else timeout) + self.timeout
        return self._run(self._session.call(api.Drain(timeout), wait))

    def members(self, topic: str) -> dict[str, Any]:
        """``{"topic", "owner", "nodes": {node: subscribers}}`` as this node sees it."""
        return self._run(self._session.call(Members(topic), self.timeout))

    def history(self, topic: str, **args: Any) -> dict[str, Any]:
        """One page of ``topic``'s stored messages (docs/PROTOCOL.md §7.9)."""
        return self.request("history", topic=topic, **args)

    def create_topic(self, topic: str, history: int, ttl: float) -> None:
        """Set ``topic``'s retention: at most ``history`` messages, none older than ``ttl`` s."""
        self.request("create", topic=topic, history=history, ttl=ttl)

    def delete_topic(self, topic: str) -> PublishResult:
        """End every subscription to ``topic`` with a final ``closed`` message."""
        return self._run(self._session.call(Delete(topic), self.timeout))

    def watch(self, topic: str) -> Generator[dict[str, Any], None, None]:
        """The members of ``topic`` now, then again after every change.

        Closing the generator (or the client) sends ``unwatch`` to the node.
        """
        return self._iterate(self._session.watch(topic, self.timeout))

    # ------------------------------------------------------------------ publishing

    def publish(
        self, topic: str, data: bytes | str, ack: bool | str = True
    ) -> PublishResult | None:
        """Publish one message and wait for its acknowledgement at level ``ack``.

        ``ack``: "owner" (or True) waits until the owner sequenced it, "replicated"
        until its replicas stored it too, "none" (or False) does not wait.
        """
        return self._run(self._session.publish(topic, data, ack_level(ack), self.timeout))

    def publish_many(
        self,
        messages: Iterable[tuple[str, bytes | str]],
        ack: bool | str = True,
        window: int = 1000,
        batch: int = 1,
    ) -> Generator[PublishResult | PublishError, None, None]:
        """Publish a stream, keeping at most ``window`` unacknowledged; yields each outcome.

        Up to ``batch`` messages travel in one frame, consecutive ones to one topic
        as one batch (the node routes a batch as one unit); a frame leaves once it is
        full, or at a ``zdps.FLUSH`` among the messages: an iterator that blocks (a
        pipe, a socket) yields FLUSH before it waits, so that what it has leaves at
        once and the outcomes of what is in flight are reported before it blocks
        (once it has, and for a list or tuple, a full frame leaves when the next item
        is read: the frame before a FLUSH, and the last, get their acks without the
        nodes' pacing, docs/PROTOCOL.md §7.4; stopped early, a frame not yet sent is
        not sent).
        Outcomes are yielded in the order they are settled: acks and nacks in the
        order they arrive (across topics this need not be publish order), and a
        PublishError(timeout) for a publish not acknowledged within the client's
        timeout of being sent. A failed publish
        yields its PublishError instead of raising, so one bad message does not stop
        the stream. Without ``ack`` nothing is yielded unless a frame cannot be sent.

        The stream stops early (the rest of ``messages`` is not read) when the node
        is unreachable: when a frame cannot be sent within the timeout (its messages
        are yielded as timeouts), or when a publish times out and the node has sent
        nothing at all since it was sent.
        """
        steps = publishing.publish_many(self._session, messages, ack, window, batch, self.timeout)
        return self._iterate(steps)

    def publish_stream(
        self,
        messages: Iterable[tuple[str, bytes | str]],
        window: int = 20_000,
        batch: int = STREAM_BATCH,
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
        steps = publishing.publish_stream(self._session, messages, window, batch, ack, self.timeout)
        return self._run(steps)

    # ------------------------------------------------------------------ subscribing

    def subscribe(
        self,
        *topics: str,
        prefix: bool = False,
        rcvhwm: int = DEFAULT_RCVHWM,
        recover: bool = True,
        since: int | None = None,
        batches: bool = False,
        group: str | None = None,
    ) -> Subscription | QueueSubscription:
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

        ``batches``: receive whole batches from the node's batch PUB (docs/PROTOCOL.md
        §9.5), with the same order, recovery and gaps; far cheaper per message for both
        the node and this process. ``recv`` still hands out one message at a time, and
        ``recv_batch`` a batch at a time (``rcvhwm`` then counts batches).

        ``group``: join the queue group of that name instead (docs/PROTOCOL.md §8.5):
        each message goes to one of its members, at most once, without recovery.
        """
        if group is not None:
            ops = queue_ops(group, queue_subscriptions(group, topics, prefix, since))
            label = f"queue group {group!r}"
            member = QueueSubscription(self._ctx, self.node, self._curve, ops, label)
            return member.opened(self.timeout)
        plan = SubscribePlan.make(list(topics), prefix, since, batches)
        sock = open_sub(self._ctx, rcvhwm, self._curve)
        try:
            inbox = self._run(self._session.subscribe(plan, recover, self.timeout), sock)
        except BaseException:
            sock.close()
            raise
        return Subscription(sock, inbox, self._recover, batches)

    # ------------------------------------------------------------------ durable consumers

    def create_consumer(self, topic: str, name: str, **settings: Any) -> dict[str, Any]:
        """Create durable consumer ``name`` of ``topic`` at its owner (docs/PROTOCOL.md
        §8.6); ``settings``: ``ack_wait``, ``max_deliver``, ``max_pending``, ``start``."""
        return self.request("consumer_create", topic=topic, name=name, **settings)

    def consume(self, topic: str, name: str) -> ConsumerSubscription:
        """Become a member of durable consumer ``name`` of ``topic``: its messages, each
        to one member at a time until acked (``ConsumerMessage.ack``)."""
        ops, label = consume_ops(topic, name)
        member = ConsumerSubscription(self._ctx, self.node, self._curve, ops, label)
        return member.opened(self.timeout)

    def check_node(self, timeout: float = CONNECT_CHECK) -> None:
        """Raise RequestError (code ``unreachable``) at once if what is at the endpoint
        is no zdps node, as far as connecting to it tells within ``timeout`` s.

        Nothing listening shows within a millisecond on loopback, where a request would
        wait out its timeout. Returns once a ZeroMQ peer answered, or when nothing was
        learnt in time (then each request's own timeout decides).
        """
        check, deadline = self._check, time.monotonic() + timeout
        while not check.read(deadline - time.monotonic()) and time.monotonic() < deadline:
            pass
        why = check.verdict(self.node)
        if why is not None:
            raise RequestError(E_UNREACHABLE, why)

    def flush(self, timeout: float | None = None) -> int:
        """Wait until the node has read every fire-and-forget publish sent so far (at most
        ``timeout`` s, default the client's); how many it did not confirm (0: all)."""
        return self._run(self._session.confirm(self.timeout if timeout is None else timeout))

    def close(self, linger: float | None = None) -> int:
        """Close the connection; live watches are ended at the node.

        First waits up to ``linger`` s (default: the client's timeout) for the node to
        read the fire-and-forget publishes sent (``flush``); returns how many it did not
        confirm, and logs a warning if there are any: they may be lost.
        """
        if self._closed:
            return 0
        left = self.flush(linger) if self._session.unconfirmed else 0
        if left:
            log.warning(
                "closing with %d fire-and-forget publish(es) that %s did not confirm reading",
                left, self.node,
            )  # fmt: skip
        send_now(self._sock, self._session.close())
        self._closed = True
        self._check.close()
        self._sock.close()
        return left

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_exc: object) -> None:
        # Interrupted (Ctrl-C): do not wait for the node, but still say what it missed.
        self.close(linger=0 if exc_type is KeyboardInterrupt else None)
