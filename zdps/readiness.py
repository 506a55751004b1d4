"""Whether a message waits on a ZeroMQ socket, at the least cost pyzmq allows: for the
daemon's loop and the clients' drains alike."""

from __future__ import annotations

import zmq
from zmq.backend import Socket as _BackendSocket

_get = _BackendSocket.get  # getsockopt without pyzmq's enum conversion (half the cost)
_EVENTS, _POLLIN = int(zmq.EVENTS), int(zmq.POLLIN)  # plain ints: IntFlag's & is slow


def readable(sock: zmq.Socket) -> bool:
    """Whether a receive would succeed now, from the socket's EVENTS: cheaper than a
    poll, and a receive that fails costs several times as much (pyzmq builds a
    ``zmq.Again`` for it), while a loop that drains after every frame it sends mostly
    finds nothing."""
    return bool(_get(sock, _EVENTS) & _POLLIN)
