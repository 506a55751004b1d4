"""A batch: the payloads of consecutive messages to one topic, as one opaque blob (§7).

The data path carries messages in batches: a client publishes ``n`` payloads to a
topic as one entry, the entry node checks them once, and every hop after it moves the
blob without looking inside. Only a node that delivers on its raw PUB (§9.1), and a
client that receives batches (§9.5), unpack it. The blob is a msgpack array of ``n``
bin payloads, so any msgpack library reads it.

The checks run at C speed: ``check_batch`` reads the array without making an object
per payload, in zdps/_batches.c where ``pip install`` could build it (and unless
ZDPS_PURE_PYTHON=1); else ``unpack_batch``, where msgpack's own length limit finds a
payload over ``max_payload`` and ``bytes.join`` an element that is not bin. No Python
code runs per payload.
"""

from __future__ import annotations

import os
from typing import Final

import msgpack

from zdps.wire.errors import E_TOO_LARGE, ProtocolError, malformed

try:
    from zdps import _batches as compiled
except ImportError:  # built without a C compiler
    compiled = None
if os.environ.get("ZDPS_PURE_PYTHON") == "1":
    compiled = None

MAX_BATCH: Final = 4096  # messages in one batch (what a delivering node expands at once)
MAX_BATCH_BYTES: Final = 32 * 1024 * 1024  # a batch's blob, unless it holds one message

_pack = msgpack.Packer(use_bin_type=True).pack
_unpackb = msgpack.unpackb


def pack_batch(payloads: list[bytes]) -> bytes:
    """The blob of ``payloads`` (a msgpack array of bin)."""
    return _pack(payloads)


def unpack_batch(blob: bytes, n: int, limit: int = -1) -> list[bytes]:
    """The ``n`` payloads of ``blob``, each at most ``limit`` bytes (-1: any), or
    ProtocolError: ``too_large`` for a payload over the limit, else ``malformed``."""
    try:
        payloads = _unpackb(blob, max_bin_len=limit, max_str_len=0, max_map_len=0)
    except ValueError as exc:
        if limit >= 0 and "max_bin_len" in str(exc):
            largest = max(map(len, unpack_batch(blob, n)))
            raise ProtocolError(
                E_TOO_LARGE, f"a payload is {largest} bytes, the limit is {limit}"
            ) from None
        raise malformed(f"a batch is a msgpack array of bin payloads: {exc}") from None
    except Exception as exc:  # msgpack raises several unrelated exception types
        why = str(exc) or type(exc).__name__
        raise malformed(f"a batch is a msgpack array of bin payloads: {why}") from None
    if type(payloads) is not list or len(payloads) != n:
        raise malformed(f"a batch of {n} is an array of {n} payloads")
    try:
        b"".join(payloads)  # a TypeError names any element that is not bin
    except TypeError:
        raise malformed("every payload of a batch is bin") from None
    return payloads


def check_batch(blob: bytes, n: int, limit: int = -1) -> None:
    """ProtocolError unless ``blob`` is an array of ``n`` bin payloads of at most
    ``limit`` bytes each (-1: any): what ``unpack_batch`` says, without unpacking."""
    if compiled is None:
        unpack_batch(blob, n, limit)
        return
    try:
        largest = compiled.check(blob, n)
    except ValueError as exc:
        unpack_batch(blob, n)  # its words for what is wrong
        raise malformed(str(exc)) from None
    if 0 <= limit < largest:
        raise ProtocolError(E_TOO_LARGE, f"a payload is {largest} bytes, the limit is {limit}")


def join_batches(first: bytes, n: int, second: bytes, m: int) -> bytes:
    """The blob of ``first``'s ``n`` payloads followed by ``second``'s ``m``, without
    unpacking them: a msgpack array's elements simply follow its header."""
    assert n + m <= MAX_BATCH
    head = bytes((0x90 | (n + m),)) if n + m < 16 else b"\xdc" + (n + m).to_bytes(2, "big")
    return b"".join((head, first[_header_size(first) :], second[_header_size(second) :]))


def _header_size(blob: bytes) -> int:
    """Bytes of a batch's array header: fixarray, array 16 or array 32."""
    kind = blob[0]
    assert 0x90 <= kind <= 0x9F or kind in (0xDC, 0xDD), "a checked batch is an array"
    return 1 if kind <= 0x9F else 3 if kind == 0xDC else 5


Runs = list[tuple[int, list[bytes]]]


def split_oversized(blob: bytes, n: int, limit: int) -> tuple[Runs, list[tuple[int, int]]]:
    """A batch refused as ``too_large``, in parts: the runs of payloads within
    ``limit`` as ``(offset, payloads)``, and ``(offset, size)`` of those over it."""
    runs: list[tuple[int, list[bytes]]] = []
    over: list[tuple[int, int]] = []
    for i, payload in enumerate(unpack_batch(blob, n)):
        if len(payload) > limit:
            over.append((i, len(payload)))
        elif runs and runs[-1][0] + len(runs[-1][1]) == i:
            runs[-1][1].append(payload)
        else:
            runs.append((i, [payload]))
    return runs, over
