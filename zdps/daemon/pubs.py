"""A local PUB (an XPUB): the subscriptions of its SUBs, exact per connection (§9.3).

The XPUB runs with ``XPUB_MANUAL``: it reports every subscribe and unsubscribe of every
SUB, and applies to its filter only what the node applies (``ZMQ_SUBSCRIBE`` right
after the report), so a subscription the node refuses delivers nothing. Each report
names its connection by the file descriptor in the frame's metadata (libzmq's
``__fd`` property, also behind ``ZMQ_SRCFD``); the socket's monitor says when a
connection opens and closes. ``LocalSubscriptions`` turns that into exact counts.

Order: a connection's accept event is in the monitor before any of its reports is in
the XPUB, so the monitor is pumped after each report is read and before it is used. A
report read late, after its connection closed and a new one got the same descriptor,
counts for the new one until that one closes: too high for a while, never too low.
The unsubscribes libzmq reports for a closed connection carry no metadata and are left
to the monitor's close event.
"""

from __future__ import annotations

from collections.abc import Callable

import zmq

from zdps.core.local_subscriptions import Connection, LocalSubscriptions, Verdict
from zdps.core.node import NodeCore
from zdps.daemon.monitors import SocketEvent, SocketMonitor
from zdps.daemon.polling import drain, user_of
from zdps.daemon.subscribers import SubscriberFilter
from zdps.topics import LOST_PREFIX, is_control_subscription
from zdps.wire.errors import E_FORBIDDEN, E_MALFORMED, E_TOO_MANY_SUBSCRIPTIONS


class LocalPub:
    """One XPUB's subscriptions, into the core (cluster-wide interest) and, for the raw
    PUB, into the filter copy that decides what to expand (``subscribers.py``)."""

    def __init__(
        self,
        sock: zmq.Socket,
        monitor: SocketMonitor,
        core: NodeCore,
        max_subscriptions: int,
        raw: SubscriberFilter | None = None,
    ) -> None:
        self.socket = sock
        self.monitor = monitor
        self.core = core
        self.raw = raw
        self.subscriptions = LocalSubscriptions(max_subscriptions)
        monitor.listeners.append(self._on_event)

    def _on_event(self, event: SocketEvent, now: float) -> None:
        if event.kind == zmq.EVENT_ACCEPTED:
            left = self.subscriptions.opened(event.value)
        elif event.kind == zmq.EVENT_DISCONNECTED:
            left = self.subscriptions.closed(event.value)
        else:
            return
        for group in left:
            self._counted(group, False, now)

    def drain(self, now: float) -> None:
        """The subscription reports waiting on the XPUB."""
        sock, subscriptions = self.socket, self.subscriptions
        for frame in drain(sock, _receiver(sock)):
            report = frame.bytes
            self.monitor.pump(now)
            if report[:1] not in (b"\x00", b"\x01"):
                why = "a subscriber sent something other than a subscription"
                self.core.bad_input(E_MALFORMED, why)
                continue
            connection, group = _connection(frame), report[1:]
            # Loss notices (notices.py) are held like groups, but are not groups.
            notices = group.startswith(LOST_PREFIX)
            if is_control_subscription(group) and not notices:  # a sync token: not applied
                self.core.on_subscription(group, report[0] == 1, now)
                continue
            if report[0] == 0:
                if subscriptions.unsubscribe(connection, group):
                    sock.setsockopt(zmq.UNSUBSCRIBE, group)
                    self._counted(group, False, now)
                continue
            verdict = subscriptions.subscribe(connection, group)
            topics = group[len(LOST_PREFIX) :] if notices else group
            if (
                verdict is Verdict.NEW
                and notices
                and not self.core.groups.valid(topics, "loss notices of")
            ):
                continue
            if verdict is Verdict.NEW and self._forbidden(frame, topics):
                continue
            if verdict is Verdict.HELD:
                sock.setsockopt(zmq.SUBSCRIBE, group)
            elif verdict is Verdict.TOO_MANY:
                limit = subscriptions.max_per_connection
                why = f"subscription {group[:64]!r}: that SUB already holds {limit}"
                self.core.bad_input(E_TOO_MANY_SUBSCRIPTIONS, why)
            elif verdict is Verdict.NEW and (notices or self._counted(group, True, now)):
                subscriptions.add(connection, group)
                sock.setsockopt(zmq.SUBSCRIBE, group)

    def _forbidden(self, frame: zmq.Frame, group: bytes) -> bool:
        """The SUB's client may not subscribe to ``group``: counted, and not applied."""
        permissions = self.core.clients.permissions
        if permissions is None:
            return False
        user = user_of(frame)
        if permissions.may_subscribe(user, group):
            return False
        why = f"{user or 'a client'} may not subscribe to {group[:64]!r}"
        self.core.bad_input(E_FORBIDDEN, why)
        return True

    def _counted(self, group: bytes, subscribed: bool, now: float) -> bool:
        """One connection more (or fewer) holds ``group``; False if the core refused it."""
        if not self.core.on_subscription(group, subscribed, now):
            return False
        if self.raw is not None:
            self.raw.update(group, subscribed)
        return True


def _receiver(sock: zmq.Socket) -> Callable[[int], zmq.Frame]:
    recv = sock.recv
    return lambda flags: recv(flags, copy=False)


def _connection(frame: zmq.Frame) -> Connection:
    """The descriptor of the connection a report came on; None without metadata (an
    inproc SUB, or libzmq reporting a closed connection's subscriptions)."""
    try:
        return int(frame.get("__fd"))
    except (zmq.ZMQError, ValueError):
        return None
