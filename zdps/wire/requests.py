"""Questions one node asks another for a client: barriers and history (§9.4, §7.9)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zdps.wire.api import HistoryQuery
from zdps.wire.codec import NodeMessage, need_int, need_map
from zdps.wire.errors import malformed


@dataclass(frozen=True, slots=True)
class Barrier(NodeMessage):
    """Answer ``barrier_ok`` once everything sent before this on the link is applied."""

    KIND = "barrier"
    SHAPE = "barrier_id int"
    barrier_id: int

    @classmethod
    def decode(cls, body: Any) -> Barrier:
        return cls(need_int(body, "a barrier id"))

    def body(self) -> int:
        return self.barrier_id


@dataclass(frozen=True, slots=True)
class BarrierOk(NodeMessage):
    """The answer to ``barrier``: releases the sender from barrier ``barrier_id``."""

    KIND = "barrier_ok"
    SHAPE = "barrier_id int"
    barrier_id: int

    @classmethod
    def decode(cls, body: Any) -> BarrierOk:
        return cls(need_int(body, "a barrier id"))

    def body(self) -> int:
        return self.barrier_id


def _pair(body: Any, kind: str) -> tuple[int, dict]:
    if type(body) is not list or len(body) != 2:
        raise malformed(f"{kind} is [fetch_id, map]")
    return need_int(body[0], "a fetch id"), need_map(body[1], kind)


@dataclass(frozen=True, slots=True)
class History(NodeMessage):
    """A client's history request, forwarded by its node to the topic's owner."""

    KIND = "history"
    SHAPE = "[fetch_id int, args map]"
    fetch_id: int
    query: HistoryQuery

    @classmethod
    def decode(cls, body: Any) -> History:
        fetch_id, args = _pair(body, cls.KIND)
        return cls(fetch_id, HistoryQuery.decode(args))

    def body(self) -> list:
        return [self.fetch_id, self.query.args()]


@dataclass(frozen=True, slots=True)
class HistoryRep(NodeMessage):
    """The owner's answer to ``history``: relayed as it is to the client."""

    KIND = "history_rep"
    SHAPE = "[fetch_id int, result map]"
    fetch_id: int
    result: dict

    @classmethod
    def decode(cls, body: Any) -> HistoryRep:
        return cls(*_pair(body, cls.KIND))

    def body(self) -> list:
        return [self.fetch_id, self.result]
