"""Socket monitors that cannot hang a context's IO thread.

libzmq 4.3 sends each monitor event from the context's IO thread with a blocking send
to the monitor's PAIR. Once the reader of those events is closed, the next event (a
socket lingers after its close, and still reports) blocks that thread for good, and
every other socket of the context with it: a client left to the garbage collector,
which closed its monitor's reader before its DEALER, froze every later client of the
process. So:

* a reader is closed only after its socket's monitor is stopped (``unwatch``), and
  until then ``_READERS`` keeps it, so the garbage collector never closes it first;
* a socket made by ``watched_socket`` stops its monitor when it closes, even when the
  garbage collector closes it;
* a reader's queue is unbounded (RCVHWM 0), so an unread event cannot block either.
"""

from __future__ import annotations

import contextlib
import functools
import uuid

import zmq

_READERS: dict[int, zmq.Socket] = {}  # monitored socket's handle -> its reader


def watch(sock: zmq.Socket, events: int, name: str) -> zmq.Socket:
    """Start ``sock``'s monitor for ``events``; returns the (plain) PAIR to read them on.

    The reader is synchronous even for an asyncio socket: it is only ever polled.
    """
    address = f"inproc://zdps-monitor-{name}-{uuid.uuid4().hex}"  # not pyzmq's shared one
    sock.monitor(address, events)
    reader = zmq.Context.shadow(sock.context.underlying).socket(zmq.PAIR)
    reader.setsockopt(zmq.RCVHWM, 0)
    reader.connect(address)
    stale = _READERS.pop(sock.underlying, None)  # a socket freed unwatched had this handle
    if stale is not None:
        stale.close(0)
    _READERS[sock.underlying] = reader
    return reader


def reader_of(sock: zmq.Socket) -> zmq.Socket | None:
    """The reader ``watch`` gave for ``sock``, while its monitor runs."""
    return _READERS.get(sock.underlying)


def unwatch(sock: zmq.Socket) -> None:
    """Stop ``sock``'s monitor, then close its reader; call it before closing ``sock``.

    A socket closed without it keeps its reader open (its monitor still reports).
    """
    if sock.closed or sock.underlying not in _READERS:
        return
    with contextlib.suppress(zmq.ZMQError):
        sock.disable_monitor()
    _READERS.pop(sock.underlying).close(0)


class _Watched:
    """A socket that stops its monitor before it closes (``close`` is also what pyzmq's
    ``__del__`` calls)."""

    def close(self, linger: int | None = None) -> None:
        unwatch(self)  # type: ignore[arg-type]
        super().close(linger)  # type: ignore[misc]


@functools.cache
def _watched_class(base: type[zmq.Socket]) -> type[zmq.Socket]:
    return type(f"Watched{base.__name__}", (_Watched, base), {})


def watched_socket(ctx: zmq.Context, kind: int) -> zmq.Socket:
    """A new socket of ``ctx`` (sync or asyncio alike) that is safe to monitor."""
    sock = ctx.socket(kind)
    sock.__class__ = _watched_class(type(sock))  # the same object, closing differently
    return sock
