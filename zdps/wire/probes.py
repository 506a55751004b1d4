"""The failure detector's messages, on the probe link only (docs/PROTOCOL.md §4.4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zdps.wire.codec import NodeMessage, need_int, need_map, need_str


@dataclass(frozen=True, slots=True)
class _Numbered(NodeMessage):
    """A probe-channel message that names one probe by its ``seq``."""

    PROBE = True
    MEMBERSHIP = True
    seq: int

    @classmethod
    def decode(cls, body: Any) -> Any:
        return cls(need_int(need_map(body, cls.KIND).get("seq"), "seq"))

    def body(self) -> dict[str, int]:
        return {"seq": self.seq}


@dataclass(frozen=True, slots=True)
class Probe(_Numbered):
    """Are you there? Answered by ``probe_ack`` with the same ``seq``."""

    KIND = "probe"
    SHAPE = "{seq: int}"


@dataclass(frozen=True, slots=True)
class ProbeAck(_Numbered):
    """The answer to ``probe``, or a helper's relayed answer to ``probe_req``."""

    KIND = "probe_ack"
    SHAPE = "{seq: int}"


@dataclass(frozen=True, slots=True)
class ProbeNack(_Numbered):
    """A helper got no answer from the target in time (counts for local health)."""

    KIND = "probe_nack"
    SHAPE = "{seq: int}"


@dataclass(frozen=True, slots=True)
class ProbeReq(NodeMessage):
    """Probe ``target`` for me: my own probe of it went unanswered."""

    KIND = "probe_req"
    SHAPE = "{seq: int, target: str}"
    PROBE = True
    MEMBERSHIP = True
    seq: int
    target: str

    @classmethod
    def decode(cls, body: Any) -> ProbeReq:
        body = need_map(body, cls.KIND)
        return cls(need_int(body.get("seq"), "seq"), need_str(body.get("target"), "target"))

    def body(self) -> dict[str, Any]:
        return {"seq": self.seq, "target": self.target}


@dataclass(frozen=True, slots=True)
class Verdict(NodeMessage):
    """News about ``node`` in its life ``inc``, at its refutation version ``ver``."""

    PROBE = True
    MEMBERSHIP = True
    node: str
    inc: int
    ver: int

    @classmethod
    def decode(cls, body: Any) -> Any:
        body = need_map(body, cls.KIND)
        return cls(
            need_str(body.get("node"), "node"),
            need_int(body.get("inc"), "inc"),
            need_int(body.get("ver"), "ver"),
        )

    def body(self) -> dict[str, Any]:
        return {"node": self.node, "inc": self.inc, "ver": self.ver}


@dataclass(frozen=True, slots=True)
class Suspect(Verdict):
    """``node`` did not answer a probe; it refutes or is declared dead."""

    KIND = "suspect"
    SHAPE = "{node: str, inc: int, ver: int}"


@dataclass(frozen=True, slots=True)
class Alive(Verdict):
    """A refutation: the sender is alive at version ``ver``."""

    KIND = "alive"
    SHAPE = "{node: str, inc: int, ver: int}"


@dataclass(frozen=True, slots=True)
class Dead(Verdict):
    """``node``'s suspicion timed out: remove it."""

    KIND = "dead"
    SHAPE = "{node: str, inc: int, ver: int}"
