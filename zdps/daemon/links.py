"""Peer links: two DEALERs per peer, sends that never block the loop, and their backlogs.

Each peer gets two DEALERs to its cluster ROUTER: the data link, and the probe link for
the failure detector. The peer's ROUTER fair-queues between the two connections, so a
probe is read after at most one frame of each other link, not behind a data backlog.
A data link whose queue is full keeps an in-memory backlog, retried when its socket
becomes writable: nothing is dropped for back-pressure (flow control bounds what is in
flight). A probe link that is full drops the envelope: a late probe is worthless.

The data links to the configured seeds are watched (``ConnectCheck``) until their
first connection says something, so the core can tell the operator why a seed is
silent: nothing listens there, or it is not a cluster endpoint.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable

import zmq

from zdps.connect_check import ConnectCheck
from zdps.daemon.polling import PollSet
from zdps.keys import CurveClient

PEER_HWM = 10_000  # envelopes queued per peer before the backlog takes over
PROBE_HWM = 1000  # probe-link envelopes queued per peer; beyond that they are dropped
SHUTDOWN_LINGER_MS = 1000
TERM_SLACK = 2.0  # seconds past the linger a context's termination may take before we give up


class PeerLinks:
    """The DEALERs to every peer endpoint, created on first send, closed on disconnect.

    With ``curve`` set, a link is CURVE: ``curve(endpoint)`` gives its keys, or None
    (and reports why) when no allowed key belongs to the node expected there, and then
    nothing is dialled.
    """

    def __init__(
        self,
        ctx: zmq.Context,
        poller: PollSet,
        refused: Callable[[str, str], None],
        watched: Iterable[str] = (),
        curve: Callable[[str], CurveClient | None] | None = None,
    ) -> None:
        self._ctx = ctx
        self._poller = poller
        self._refused = refused  # (endpoint, why): not dialled
        self._watched = frozenset(watched)  # the seeds: their data links are checked
        self._curve = curve
        self._data: dict[str, zmq.Socket] = {}
        self._probes: dict[str, zmq.Socket] = {}
        self._backlog: dict[str, deque[bytes]] = {}
        self._checks: dict[str, ConnectCheck] = {}

    def _dealer(self, endpoint: str, probe: bool) -> zmq.Socket | None:
        sockets = self._probes if probe else self._data
        sock = sockets.get(endpoint)
        if sock is None:
            keys = None
            if self._curve is not None:
                keys = self._curve(endpoint)
                if keys is None:
                    return None  # ``curve`` reported it
            sock = self._ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, PROBE_HWM if probe else PEER_HWM)
            if keys is not None:
                keys.apply(sock)
            check = None
            try:
                if not probe and endpoint in self._watched:
                    check = ConnectCheck(sock)  # before connecting, so no event is missed
                sock.connect(endpoint)
            except zmq.ZMQError as exc:  # the core checks endpoints; this is the last guard
                if check is not None:
                    check.close()
                sock.close(0)
                self._refused(endpoint, str(exc))
                return None
            sockets[endpoint] = sock
            if check is not None:
                self._checks[endpoint] = check
                self._poller.register(check.monitor, zmq.POLLIN)
        return sock

    def send(self, endpoint: str, frame: bytes) -> None:
        """Queue an envelope on the data link, in order, whatever the link's state."""
        backlog = self._backlog.get(endpoint)
        if backlog:
            backlog.append(frame)
            return
        sock = self._dealer(endpoint, probe=False)
        if sock is None:
            return
        try:
            sock.send(frame, zmq.NOBLOCK)
        except zmq.Again:
            self._backlog[endpoint] = deque([frame])
            self._poller.register(sock, zmq.POLLOUT)

    def send_probe(self, endpoint: str, frame: bytes) -> None:
        """Send an envelope on the probe link now, or drop it."""
        sock = self._dealer(endpoint, probe=True)
        if sock is not None:
            with contextlib.suppress(zmq.Again):
                sock.send(frame, zmq.NOBLOCK)

    def retry(self, ready: dict) -> None:
        """Move backlogs into the links the poller found writable."""
        if not self._backlog:
            return
        for endpoint in list(self._backlog):
            sock = self._data[endpoint]
            if not ready.get(sock, 0) & zmq.POLLOUT:
                continue
            backlog = self._backlog[endpoint]
            while backlog:
                try:
                    sock.send(backlog[0], zmq.NOBLOCK)
                except zmq.Again:
                    break
                backlog.popleft()
            if not backlog:
                del self._backlog[endpoint]
                self._poller.unregister(sock)

    def connection_news(self, ready: dict) -> list[tuple[str, str]]:
        """(seed endpoint, ``ConnectCheck.answer``) for each watched link that said what
        it found this turn."""
        if not self._checks:
            return []
        news = []
        for endpoint, check in list(self._checks.items()):
            monitor = check.monitor
            if monitor in ready and check.read():
                self._poller.unregister(monitor)
                del self._checks[endpoint]
                news.append((endpoint, check.answer))
        return news

    def _unwatch(self, endpoint: str) -> None:
        check = self._checks.pop(endpoint, None)
        if check is not None:
            self._poller.unregister(check.monitor)
            check.close()

    def disconnect(self, endpoint: str) -> None:
        """Close both links to ``endpoint``, discarding what is still queued."""
        self._unwatch(endpoint)
        self._backlog.pop(endpoint, None)
        sock = self._data.pop(endpoint, None)
        if sock is not None:
            self._poller.unregister(sock)
            sock.close(0)
        probe = self._probes.pop(endpoint, None)
        if probe is not None:
            probe.close(0)

    def linger(self) -> None:
        """Leaving: hand every backlog to ZeroMQ (as far as the HWM allows) and give the
        data links SHUTDOWN_LINGER_MS to send their last envelopes (bye, acks)."""
        for endpoint, backlog in self._backlog.items():
            sock = self._data[endpoint]
            while backlog:
                try:
                    sock.send(backlog.popleft(), zmq.NOBLOCK)
                except zmq.Again:
                    break
        for sock in self._data.values():
            sock.setsockopt(zmq.LINGER, SHUTDOWN_LINGER_MS)

    def unwatch(self) -> None:
        """Stop watching every seed's link (before any socket closes)."""
        for endpoint in list(self._checks):
            self._unwatch(endpoint)

    def close(self) -> None:
        """Close every link; each keeps the LINGER it has."""
        self.unwatch()
        for sock in (*self._data.values(), *self._probes.values()):
            sock.close()


def cluster_context(max_peers: int) -> zmq.Context:
    """A ZeroMQ context for a node of up to ``max_peers`` peers: two DEALERs each (data
    and probe links), as many again for peers declared dead while they are redialed,
    and the API, PUBs and monitors. libzmq's default of 1,023 sockets stopped a node at
    about 500 peers (docs/SCALE.md).

    Its IO thread runs SCHED_BATCH: woken by a send, it does not preempt the loop that
    sent, which finishes its turn first (bench/ab, three nodes: p50 -6 % at 10,000 and
    at 1,000 msg/s; bench/README.md has the figures)."""
    ctx = zmq.Context()
    ctx.set(zmq.MAX_SOCKETS, 4 * max_peers + 256)
    if _batch_allowed():
        ctx.set(zmq.THREAD_SCHED_POLICY, os.SCHED_BATCH)
    return ctx


def _batch_allowed() -> bool:
    """Whether a thread of this process may take SCHED_BATCH: libzmq aborts the process
    when its IO thread cannot take the policy it was given (not Linux, a sandbox)."""
    allowed = []

    def probe() -> None:
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))  # this thread only
            allowed.append(True)

    thread = threading.Thread(target=probe, name="zdps-sched-probe")
    thread.start()
    thread.join()
    return bool(allowed)


def term_within(ctx: zmq.Context, seconds: float = SHUTDOWN_LINGER_MS / 1000 + TERM_SLACK) -> bool:
    """Terminate ``ctx`` in a thread and wait at most ``seconds``; False if it did not
    finish. Every socket is closed with a finite linger, so ``term`` should return
    within it, but libzmq has been seen to wait forever (a CI run: a node leaving while
    its peer was stopped), and a daemon that never exits is worse than one that leaves
    ZeroMQ's last frames behind: systemd would kill it only after its stop timeout."""
    terminating = threading.Thread(target=ctx.term, name="zmq-term", daemon=True)
    terminating.start()
    terminating.join(seconds)
    return not terminating.is_alive()
