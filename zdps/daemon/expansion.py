"""A batch out of the raw PUB as three frames per message: the data path's one loop
per message (§9.1), compiled where it could be built.

``zdps/_batches.c`` parses the batch and calls libzmq's ``zmq_send`` itself, three times
per message; the pure-Python loop below does the same through pyzmq's backend ``send``,
which costs several times as much per frame (bench/RESULTS.md, zdps-3-csub). The
compiled loop is used when ``pip install`` could build it (``setup.py``: optional, so a
machine without a C compiler still installs zdps) and this process's libzmq is found
unambiguously (pyzmq's own, located in /proc/self/maps and checked by version), unless
ZDPS_PURE_PYTHON=1. Both refuse a malformed batch whole, before sending any of it.

Both PUBs are XPUB_NODROP, and every message is sent by ``send_message``'s rule: its
first frame without waiting; if a subscriber's queue is full (EAGAIN) the message goes
in lossy mode, which drops it for that subscriber only, and is counted. libzmq then
sets that subscriber aside until it has caught up (it misses the messages meanwhile,
and sees the gap in ``seq``), so the count is of times a subscriber fell ``pub_hwm``
behind and started losing messages: what the operator must hear about, where plain PUB
semantics would say nothing.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable

import zmq
from zmq.backend import Socket as _BackendSocket

from zdps.wire.batches import compiled, unpack_batch
from zdps.wire.delivery import EPOCH_KEY, SEQ_KEY
from zdps.wire.errors import malformed

# (pub, topic frame, seq, epoch, n, batch) -> messages that found a subscriber's queue full
Expand = Callable[[zmq.Socket, bytes, int, int, int, bytes], int]

_send = _BackendSocket.send
_set = _BackendSocket.set
_MORE, _FIRST = zmq.SNDMORE, zmq.SNDMORE | zmq.DONTWAIT
_NODROP = zmq.XPUB_NODROP
_header = struct.Struct(">6sQ7sQ").pack  # message_header's layout, in one call


def send_message(pub: zmq.Socket, topic: bytes, header: bytes, body: bytes) -> int:
    """Send one three-frame message on an XPUB_NODROP socket: 1 if a subscriber's
    queue was full (the message is lost for it), else 0."""
    try:
        _send(pub, topic, _FIRST, True, False)
        full = 0
    except zmq.Again:
        _set(pub, _NODROP, 0)
        _send(pub, topic, _MORE, True, False)
        full = 1
    _send(pub, header, _MORE, True, False)
    _send(pub, body, 0, True, False)
    if full:
        _set(pub, _NODROP, 1)
    return full


def expand_python(pub: zmq.Socket, topic: bytes, seq: int, epoch: int, n: int, batch: bytes):
    """Send the ``n`` payloads of ``batch`` as ``seq``, ``seq + 1``, ...; how many found
    a subscriber's queue full. ProtocolError (nothing sent) if it is not an array of
    ``n`` bin payloads."""
    full = 0
    for payload in unpack_batch(batch, n):
        full += send_message(pub, topic, _header(SEQ_KEY, seq, EPOCH_KEY, epoch), payload)
        seq += 1
    return full


def zmq_addresses() -> tuple[int, int] | None:
    """The addresses of ``zmq_send`` and ``zmq_setsockopt`` in the one libzmq this
    process has loaded, if its version is the one pyzmq reports; None if there is no
    such single library."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "zmq" in line.rsplit("/", 1)[-1]}
    except OSError:  # not Linux
        return None
    found = []
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
            functions = (lib.zmq_send, lib.zmq_setsockopt)
            version = lib.zmq_version
        except (OSError, AttributeError):
            continue
        parts = [ctypes.c_int() for _ in range(3)]
        version(*map(ctypes.byref, parts))
        if tuple(part.value for part in parts) == zmq.zmq_version_info():
            found.append(tuple(ctypes.cast(f, ctypes.c_void_p).value for f in functions))
    return found[0] if len(set(found)) == 1 else None  # type: ignore[return-value]


def expander() -> tuple[Expand, str]:
    """The loop this process uses, and its name (``compiled`` or ``python``)."""
    addresses = zmq_addresses() if compiled is not None else None
    if addresses is None:
        return expand_python, "python"
    loop, (send, setsockopt) = compiled.expand, addresses

    def expand(pub: zmq.Socket, topic: bytes, seq: int, epoch: int, n: int, batch: bytes):
        try:
            return loop(send, setsockopt, pub.underlying, topic, seq, epoch, n, batch)
        except ValueError as exc:
            raise malformed(str(exc)) from None

    return expand, "compiled"
