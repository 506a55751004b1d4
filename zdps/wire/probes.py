"""The failure detector's messages, on the probe link only (docs/PROTOCOL.md §4.4).

Each body is a map of the message's fields: ints (``int``, 0 to 2**64 - 1) and
non-empty strs, read from the dataclass's own field list, so a field is declared once.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from typing import Any

from zdps.wire.codec import NodeMessage, need_int, need_map, need_str
from zdps.wire.errors import malformed

MAX_VERSION = 2**63  # refutation versions stay below: one more must still fit in msgpack

_NEED = {"int": need_int, "str": need_str}


@dataclass(frozen=True, slots=True)
class _Probing(NodeMessage):
    """A probe-link message: its body is ``{field: value}`` for every field."""

    PROBE = True
    MEMBERSHIP = True

    @classmethod
    def decode(cls, body: Any) -> Any:
        body = need_map(body, cls.KIND)
        return cls(*(_NEED[kind](body.get(name), name) for name, kind in _fields(cls)))

    def body(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name, _ in _fields(type(self))}


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, str], ...]:
    """(name, type) of each field: ``dataclasses.fields`` took 2 µs a call, a tenth of
    a probe's handling."""
    return tuple((f.name, str(f.type)) for f in fields(cls))


@dataclass(frozen=True, slots=True)
class _Numbered(_Probing):
    """Names one probe by its ``seq``."""

    SHAPE = "{seq: int}"
    seq: int


@dataclass(frozen=True, slots=True)
class Probe(_Numbered):
    """Are you there? Answered by ``probe_ack`` with the same ``seq``."""

    KIND = "probe"


@dataclass(frozen=True, slots=True)
class ProbeAck(_Numbered):
    """The answer to ``probe``, or a helper's relayed answer to ``probe_req``."""

    KIND = "probe_ack"


@dataclass(frozen=True, slots=True)
class ProbeNack(_Numbered):
    """A helper got no answer from the target in time (counts for local health)."""

    KIND = "probe_nack"


@dataclass(frozen=True, slots=True)
class ProbeReq(_Probing):
    """Probe ``target`` for me: my own probe of it went unanswered."""

    KIND = "probe_req"
    SHAPE = "{seq: int, target: str}"
    seq: int
    target: str


@dataclass(frozen=True, slots=True)
class Verdict(_Probing):
    """News about ``node`` in its life ``inc``, at its refutation version ``ver``.

    ``ver`` stays below 2**63: a refutation raises it by one, and the result must still
    be an int msgpack can carry (the live fuzzer found 2**64 - 1 crash the accused).
    """

    SHAPE = "{node: str, inc: int, ver: int < 2**63}"
    node: str
    inc: int
    ver: int

    @classmethod
    def decode(cls, body: Any) -> Any:
        verdict = super(Verdict, cls).decode(body)
        if verdict.ver >= MAX_VERSION:
            raise malformed(f"{cls.KIND}'s ver is an integer from 0 to {MAX_VERSION - 1}")
        return verdict


@dataclass(frozen=True, slots=True)
class Suspect(Verdict):
    """``node`` did not answer a probe; it refutes or is declared dead."""

    KIND = "suspect"


@dataclass(frozen=True, slots=True)
class Alive(Verdict):
    """A refutation: the sender is alive at version ``ver``."""

    KIND = "alive"


@dataclass(frozen=True, slots=True)
class Dead(Verdict):
    """``node``'s suspicion timed out: remove it."""

    KIND = "dead"
