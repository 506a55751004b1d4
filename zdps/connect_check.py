"""What a DEALER's first connection attempts say about the endpoint it dials.

A refused connection shows within a millisecond on loopback, where a request would
wait its whole timeout to say as much, and a failed ZeroMQ handshake says "something
listens, but not a socket that talks to a DEALER". The clients use it to say "no zdps
node at ..." at once; the daemon, to say what is wrong with a seed that never answers.
"""

from __future__ import annotations

import math

import zmq

from zdps.socket_monitor import unwatch, watch


class ConnectCheck:
    """Whether anything at a DEALER's endpoint speaks ZeroMQ, from its monitor events.

    A refused connection shows within a millisecond on loopback, where a request
    would wait its whole timeout to say as much. ``verdict`` says what is known by
    then: None means a ZeroMQ handshake succeeded, or nothing was learnt in time (a
    slow network, a stopped node: the request's own timeout decides then).
    """

    EVENTS = (
        zmq.EVENT_CONNECTED
        | zmq.EVENT_CONNECT_RETRIED
        | zmq.EVENT_DISCONNECTED
        | zmq.EVENT_HANDSHAKE_SUCCEEDED
        | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
        | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
        | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    )

    def __init__(self, sock: zmq.Socket) -> None:
        self._sock = sock
        self._monitor: zmq.Socket | None = watch(sock, self.EVENTS, "dealer")
        self._connected = False
        self.answer: str | None = None  # "zeromq", "refused", "denied" or "rejected"

    @property
    def monitor(self) -> zmq.Socket | None:
        """The socket the events arrive on (for a poller), until there is an answer."""
        return self._monitor

    def read(self, wait: float = 0.0) -> bool:
        """Take in the events so far, waiting up to ``wait`` s for the first; True once
        there is an answer."""
        monitor = self._monitor
        wait_ms = max(0, math.ceil(wait * 1000))
        while self.answer is None and monitor is not None and monitor.poll(wait_ms):
            wait_ms = 0
            event = int.from_bytes(monitor.recv_multipart()[0][:2], "little")
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.answer = "zeromq"
            elif event == zmq.EVENT_CONNECTED:
                self._connected = True
            elif event == zmq.EVENT_CONNECT_RETRIED and not self._connected:
                self.answer = "refused"
            elif event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:  # its ZAP handler said no
                self.answer = "denied"
            elif event != zmq.EVENT_CONNECT_RETRIED:  # a failed or dropped handshake
                self.answer = "rejected"
        if self.answer is not None:
            self.close()
        return self.answer is not None

    def verdict(self, node: str) -> str | None:
        """Why ``node`` is not a zdps node, as far as the events tell; None if they do not."""
        answer = self.answer
        self.close()
        if answer == "refused":
            return f'no zdps node at {node} — is "zdps start" running?'
        if answer == "denied":
            return (
                f"the zdps node at {node} refused this client at its handshake: it has "
                "max_clients connections already, or it wants a CURVE key it lists "
                "(curve_clients); its log says which"
            )
        if answer == "rejected":
            return (
                f"no zdps node at {node}: something there refused the ZeroMQ handshake "
                "(is it the node's API endpoint?)"
            )
        return None  # a handshake, or none yet: a stopped or busy node is slow to answer

    def close(self) -> None:
        if self._monitor is not None:
            unwatch(self._sock)
            self._monitor = None
