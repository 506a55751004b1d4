"""Everything ZeroMQ in the clients: the sockets, their options, and how they are read.

The session and the recovery never see a socket; both drivers (``Client``,
``AsyncClient``) make and read theirs here, so socket options and libzmq's quirks are
handled once. An asyncio socket is a ``zmq.Socket`` too: whatever does not wait works
on both.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Generator
from typing import Any

import zmq
from zmq.backend import Socket as _BackendSocket

from zdps.client.protocol import decode_batch_delivery, decode_delivery
from zdps.client.steps import Dial, Filter
from zdps.client.subscription import Inbox
from zdps.connect_check import ConnectCheck
from zdps.keys import CurveClient
from zdps.socket_monitor import reader_of, unwatch, watch, watched_socket

DEALER_LINGER_MS = 1000  # what a closed client still tries to deliver, at most
IDLE_CHECK = 0.25  # seconds without a delivery after which a subscription checks its link
CONNECT_CHECK = 1.0  # seconds ``check_node`` waits to learn whether a node answers
_get = _BackendSocket.get  # getsockopt without pyzmq's enum conversion (half the cost)
_RCVMORE = zmq.RCVMORE


def ms(seconds: float) -> int:
    """Milliseconds for ``poll``, rounded up so that a short wait is not a busy loop."""
    return max(0, math.ceil(seconds * 1000))


def open_dealer(
    ctx: zmq.Context, node: str, curve: CurveClient | None = None
) -> tuple[zmq.Socket, ConnectCheck]:
    """A DEALER connected to ``node`` (with CURVE if ``curve``), and what its first
    connection attempts say; a bad endpoint raises ValueError, leaking nothing."""
    sock = watched_socket(ctx, zmq.DEALER)
    try:
        sock.setsockopt(zmq.LINGER, DEALER_LINGER_MS)
        if curve is not None:
            curve.apply(sock)
        check = ConnectCheck(sock)  # before connecting, so that no event is missed
        sock.connect(node)
    except zmq.ZMQError as exc:
        sock.close(0)
        raise ValueError(f"cannot connect to node endpoint {node!r}: {exc}") from None
    return sock, check


def open_sub(ctx: zmq.Context, rcvhwm: int, curve: CurveClient | None = None) -> zmq.Socket:
    """A SUB not yet connected: RCVHWM (and CURVE) must be set before connecting (§2).

    SNDHWM 0: a SUB sends its subscriptions through its send queue, and libzmq drops
    those that find it full (1000 by default) without a word (§9.2). Its handshakes
    are watched from before it connects, so that ``Reconnects`` sees the first one.
    """
    sock = watched_socket(ctx, zmq.SUB)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, rcvhwm)
        sock.setsockopt(zmq.SNDHWM, 0)
        if curve is not None:
            curve.apply(sock)
        watch(sock, zmq.EVENT_HANDSHAKE_SUCCEEDED, "sub")
    except BaseException:
        sock.close()
        raise
    return sock


def set_up(sub: zmq.Socket, step: Dial | Filter) -> None:
    """Carry out a subscribing step on the SUB."""
    if type(step) is Dial:
        sub.connect(step.endpoint)
        return
    for group in step.add:
        sub.subscribe(group)
    for group in step.drop:
        sub.unsubscribe(group)


def send_now(sock: zmq.Socket, frames: list[bytes]) -> None:
    """Queue ``frames`` if there is room at once, else drop them.

    For frames whose reply nobody awaits (``unwatch``): a node that does not read has
    nothing to end. On an asyncio socket the send settles at once, or queues behind
    the sends already waiting; either way its outcome is only retrieved.
    """
    for frame in frames:
        try:
            sent = sock.send(frame, zmq.NOBLOCK)
        except zmq.ZMQError:  # no room (the node is down), or the socket is closed
            continue
        if isinstance(sent, asyncio.Future):
            sent.add_done_callback(_retrieve)


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


def without_asyncio(sock: zmq.Socket) -> zmq.Socket:
    """The same socket, for reads that never wait (after an awaited ``poll``).

    pyzmq reads non-blocking through such a shadow itself, so the asyncio socket's
    event handling stays right; ``recv_delivery`` needs plain (not future) results.
    """
    return zmq.Socket.shadow(sock.underlying)


def recv_delivery(sock: zmq.Socket, flags: int = 0) -> list[bytes]:
    """The three frames of one delivery from a node's PUB (docs/PROTOCOL.md §9.1).

    Only the node publishes on its PUB and every delivery has exactly three frames, so
    they are read with plain receives and only the more-flag after the third is asked
    for: pyzmq's recv_multipart reads it for every frame, and a ``zmq.Frame`` costs an
    object per frame. Extra frames are drained and returned, for ``decode_delivery``
    to refuse.
    """
    recv = sock.recv
    frames = [recv(flags), recv(), recv()]
    while _get(sock, _RCVMORE):
        frames.append(recv())
    return frames


class Reconnects:
    """Sends a SUB's subscriptions again when its connection to the node is re-established
    (a queue member's DEALER uses ``reconnected`` to join again, queue_member.py).

    libzmq's SUB reconnects to a node restarted on the same endpoint but does not resend
    its subscriptions (seen with libzmq 4.3.5), so the new node would never learn of
    them. A reconnected SUB receives nothing, so checking while idle is enough. What
    was published while it was away is then fetched (``Inbox.caught_up``).
    """

    def __init__(self, sock: zmq.Socket) -> None:
        self._sock = sock
        monitor = reader_of(sock)
        assert monitor is not None, "its handshakes are watched from before it connects"
        self._monitor = monitor
        self._handshakes = 0

    def reconnected(self) -> bool:
        """Whether the socket made a connection anew since the last look."""
        again = False
        while self._monitor.poll(0):
            self._monitor.recv_multipart()
            self._handshakes += 1
            again |= self._handshakes > 1
        return again

    def check(self, sock: zmq.Socket, groups: list[bytes]) -> bool:
        """Whether the SUB reconnected since the last check (its subscriptions are then
        sent again)."""
        reconnected = self.reconnected()
        if reconnected:
            for group in groups:  # the node sees a leave and a join: net one member
                sock.unsubscribe(group)
                sock.subscribe(group)
        return reconnected

    def close(self) -> None:
        unwatch(self._sock)


class SubscriptionSocket:
    """What both drivers' subscriptions share: the SUB, its inbox, its reconnect watch."""

    def __init__(
        self,
        sock: zmq.Socket,
        inbox: Inbox,
        recover: Callable[[Generator], Any],
        batches: bool = False,
    ) -> None:
        self._sock = sock
        self._inbox = inbox
        self._decode = decode_batch_delivery if batches else decode_delivery
        self._recover = recover  # carries out the inbox's recoveries
        self._reconnects = Reconnects(sock)

    @property
    def ended(self) -> bool:
        """True once every exact topic was deleted (prefix subscriptions never end)."""
        return self._inbox.ended

    def _idle(self) -> Generator | None:
        """Nothing arrived for a while: if the SUB reconnected meanwhile, subscribe again;
        with recovery on, the catching up to carry out (``Inbox.caught_up``)."""
        inbox = self._inbox
        if not self._reconnects.check(self._sock, inbox.subscriptions()):
            return None
        return None if inbox.recovery is None else inbox.caught_up()

    def _arrived(self, frames: list[bytes]) -> Generator | None:
        """One delivery's frames: the recovery to carry out before it, if any."""
        delivery = self._decode(frames)
        return self._inbox.arrived(delivery, self._sock.unsubscribe)

    def close(self) -> None:
        self._reconnects.close()
        self._sock.close()
