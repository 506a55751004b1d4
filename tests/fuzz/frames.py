"""Hostile frames for the live fuzzer: random, truncated, mutated, spoofed and replayed.

Everything here is a pure function of a ``random.Random``, so a failure names a seed
that makes the same frames again. Every frame is safe to send on this machine: any
string in it that could be an endpoint is a numeric loopback endpoint (``sanitized``),
because a node dials what a hello advertises, and a host name would make it ask the
resolver, which is off this machine.
"""

from __future__ import annotations

import random
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgpack

from tests.wire.test_messages import EXAMPLES, OP_EXAMPLES, paths, replaced
from zdps.wire import codec
from zdps.wire.api import publish_entry
from zdps.wire.batches import pack_batch
from zdps.wire.errors import ProtocolError

V = codec.PROTOCOL_VERSION
LOOPBACK = re.compile(r"tcp://127\.0\.0\.1:[0-9]{1,5}")  # the only endpoints sent
KINDS = sorted({type(message).KIND for message in EXAMPLES})
# Kinds that, from an alive peer, take nodes out of the cluster (on purpose: that is
# what they are for). The fuzzer's node sends them rarely, so that the legitimate
# traffic it runs beside still has a cluster to run on.
DISRUPTIVE = {"bye", "dead", "suspect", "hello"}
# A well-formed ``drain`` request makes the node leave, as it should, so the API side
# never sends one whole; the decoder tests damage its arguments (tests/wire).
REQUESTS = [op for op in OP_EXAMPLES if op.OP != "drain"]


@dataclass(frozen=True)
class Peer:
    """What the fuzzer knows of a real node: its id, incarnation and scope (from status)."""

    node: str
    incarnation: int
    scope: str


def value(rng: random.Random, depth: int = 0) -> Any:
    """Any msgpack value, biased towards the ones decoders trip on."""
    pick = rng.randrange(12 if depth < 3 else 9)
    if pick == 0:
        return None
    if pick == 1:
        return rng.random() < 0.5
    if pick == 2:
        return rng.choice([0, 1, -1, 2**31, 2**32, 2**63 - 1, -(2**63), 2**64 - 1, 255, 256])
    if pick == 3:
        return rng.randint(-1000, 10**6)
    if pick == 4:
        return rng.choice([0.0, -1.5, 1e308, float("inf"), float("nan"), 3.25])
    if pick == 5:
        return text(rng)
    if pick == 6:
        return rng.randbytes(rng.randrange(0, 40))
    if pick == 7:
        return rng.choice(KINDS)
    if pick == 8:
        return "x" * rng.choice([256, 300, 70000])  # over the limits
    if pick == 9:
        return [value(rng, depth + 1) for _ in range(rng.randrange(0, 6))]
    if pick == 10:
        return {text(rng): value(rng, depth + 1) for _ in range(rng.randrange(0, 4))}
    return [rng.choice(KINDS), value(rng, depth + 1)]


def text(rng: random.Random) -> str:
    """A short string: plain, with control characters, or odd Unicode."""
    alphabet = rng.choice(["abct.-*", "\x00\t\n\x7f\x85", "é€😀\u202e", "0123456789:/@[]"])
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))


def sanitized(item: Any, port: int) -> Any:
    """``item`` with every string that could name an endpoint made a numeric loopback one."""
    if isinstance(item, str):
        return f"tcp://127.0.0.1:{port}" if "://" in item else item
    if isinstance(item, list):
        return [sanitized(i, port) for i in item]
    if isinstance(item, dict):
        return {sanitized(k, port): sanitized(v, port) for k, v in item.items()}
    return item


def is_safe(frame: bytes) -> bool:
    """Whether a frame, if it decodes at all, holds no string that could be an endpoint
    other than a numeric loopback one (a damaged byte can make one: this catches it)."""
    try:
        decoded = codec.unpack(frame)  # as the nodes decode it
    except ProtocolError:  # not msgpack: nothing in it can be dialled
        return True
    return all(LOOPBACK.fullmatch(s) for s in _strings(decoded) if "://" in s)


def _strings(item: Any) -> Iterator[str]:
    if isinstance(item, str):
        yield item
    elif isinstance(item, list):
        for inner in item:
            yield from _strings(inner)
    elif isinstance(item, dict):
        for key, inner in item.items():
            yield from _strings(key)
            yield from _strings(inner)


def pack(item: Any) -> bytes:
    return msgpack.packb(item, use_bin_type=True)


def mutated_message(rng: random.Random, port: int) -> Any:
    """A real message kind with one field replaced by anything."""
    raw = msgpack.unpackb(pack(rng.choice(EXAMPLES).encode()), raw=False, strict_map_key=False)
    path = rng.choice(paths(raw))
    return sanitized(replaced(raw, path, value(rng)), port)


def envelope(rng: random.Random, me: Peer, others: list[Peer], port: int) -> bytes:
    """A cluster envelope from the fuzzer's own node ``me`` (an allowed key), or one that
    claims to be another node (real or made up), with a right or wrong incarnation,
    carrying real, mutated or random messages, maybe of another version or scope."""
    peer = me if rng.random() < 0.75 else rng.choice(others)
    sender = peer.node if rng.random() < 0.9 else text(rng)
    incarnation = peer.incarnation
    if rng.random() < 0.2:
        incarnation = rng.choice([peer.incarnation + 1, 1, 0, -1, 2**64 - 1, "1"])
    messages = []
    for _ in range(rng.randrange(1, 5)):
        roll = rng.random()
        if roll < 0.4:
            messages.append(mutated_message(rng, port))
        elif roll < 0.7:
            real = rng.choice(EXAMPLES).encode()
            messages.append(sanitized(msgpack.unpackb(pack(real), raw=False), port))
        else:
            messages.append(sanitized(value(rng), port))
    if incarnation == peer.incarnation and rng.random() > 0.002:
        messages = [m for m in messages if not (isinstance(m, list) and _disruptive(m))]
    version = V if rng.random() < 0.9 else rng.choice([V + 1, 0, 1, "2", None])
    scope = peer.scope if rng.random() < 0.9 else text(rng)
    body = [version, scope, sender, incarnation, messages]
    if rng.random() < 0.1:
        body = body[: rng.randrange(0, 5)] + [value(rng)] * rng.randrange(0, 2)
    return pack(sanitized(body, port))


def _disruptive(message: list) -> bool:
    return bool(message) and isinstance(message[0], str) and message[0] in DISRUPTIVE


def api_frame(rng: random.Random, port: int) -> bytes:
    """An API frame: a request or publish with a field replaced, or anything."""
    roll = rng.random()
    if roll < 0.35:
        op = rng.choice(REQUESTS)
        frame = [V, "req", rng.randint(-2, 2**64 - 1), op.OP, op.args()]
    elif roll < 0.7:
        n = rng.randrange(1, 4)
        entry = publish_entry(
            rng.randint(0, 100), text(rng) or "t", [b"p"] * n, rng.randrange(0, 3)
        )
        frame = [V, "pub", [entry]]
    else:
        return pack(sanitized(value(rng), port))
    raw = msgpack.unpackb(pack(frame), raw=False, strict_map_key=False)
    if rng.random() < 0.8:
        raw = replaced(raw, rng.choice(paths(raw)), value(rng))
    return pack(sanitized(raw, port))


def damaged(rng: random.Random, frame: bytes) -> bytes:
    """Truncated, a flipped byte, or a huge count where msgpack expects a length."""
    roll = rng.random()
    if roll < 0.4 and frame:
        return frame[: rng.randrange(len(frame))]
    if roll < 0.7 and frame:
        at = rng.randrange(len(frame))
        return frame[:at] + bytes([frame[at] ^ (1 << rng.randrange(8))]) + frame[at + 1 :]
    head = rng.choice([b"\xdd", b"\xdf", b"\xdb", b"\xc6"])  # array32, map32, str32, bin32
    return head + struct.pack(">I", rng.choice([2**32 - 1, 2**31, 10**9])) + frame[:16]


def batch_blob(rng: random.Random) -> bytes:
    """A batch as clients pack it, or one whose count lies."""
    payloads = [rng.randbytes(rng.randrange(0, 8)) for _ in range(rng.randrange(1, 5))]
    blob = pack_batch(payloads)
    return blob if rng.random() < 0.5 else damaged(rng, blob)
