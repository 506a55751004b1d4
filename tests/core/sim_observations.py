"""What ``SimNet`` (tests/core/node_net.py) records, and the views tests read it through.

Recorded: ``deliveries`` (what each node's XPUB published, as ``Delivery``),
``client_frames`` (decoded API frames per ``(node, client)``, read with ``frames``,
``acks``, ``nacks``, ``replies``), ``sent`` (every envelope, decoded, as ``Sent``; data
entries are counted with ``entries(kind)``), ``logs``, ``errors``, ``dropped``.
``converged()`` says whether every running node sees exactly every other running node
as alive and on its ring.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from zdps.core.ring import HashRing
from zdps.wire import API_ACK, API_NACK, API_REPLY

CLIENT = b"client"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message the node's XPUB published."""

    time: float
    topic: str
    header: dict
    payload: bytes


@dataclass(frozen=True, slots=True)
class Sent:
    """One envelope frame a node sent (messages decoded back from the frame)."""

    time: float
    src: str
    endpoint: str
    dst: str | None  # the node listening at ``endpoint`` when it was sent
    messages: list


class Observations:
    """``SimNet``'s read-only views. Mixed into ``SimNet``, whose records it reads."""

    def views(self) -> dict[str, set[str]]:
        """Each running node's set of alive peers."""
        return {n: set(self.core(n).membership.alive()) for n in self.running()}

    def converged(self) -> bool:
        """Every running node sees exactly the others as alive, and rings agree."""
        running = set(self.running())
        return all(
            set(self.core(n).membership.alive()) == running - {n}
            and self.core(n).ring.nodes == running
            for n in running
        )

    def owner(self, topic: str, nodes: Iterable[str] | None = None) -> str | None:
        """The owner of ``topic`` on a ring of ``nodes`` (default: the running nodes)."""
        return HashRing(self.running() if nodes is None else nodes).owner(topic)

    def received(self, node: str, topic: str | None = None) -> list[Delivery]:
        """``node``'s deliveries, optionally only those of ``topic``."""
        return [d for d in self.deliveries[node] if topic is None or d.topic == topic]

    def stamps(self, node: str, topic: str) -> list[tuple[int, int]]:
        """(epoch, seq) of the ordinary messages ``node`` delivered on ``topic``."""
        return [
            (d.header["epoch"], d.header["seq"])
            for d in self.received(node, topic)
            if "type" not in d.header
        ]

    def frames(self, node: str, client: bytes = CLIENT) -> list[list]:
        """Decoded API frames ``[kind, *fields]`` sent to ``client`` of ``node``."""
        return [frame for _, frame in self.client_frames.get((node, client), [])]

    def answered_at(self, node: str, ref: Any, client: bytes = CLIENT) -> float | None:
        """When ``client`` of ``node`` first got an ack, nack or reply for ``ref``."""
        for time, (kind, *fields) in self.client_frames.get((node, client), []):
            if kind == API_ACK and any(e[0] <= ref < e[0] + e[4] for e in fields[0]):
                return time
            if kind == API_NACK and any(e[0] <= ref < e[0] + e[3] for e in fields[0]):
                return time
            if kind == API_REPLY and fields[0] == ref:
                return time
        return None

    def acks(self, node: str, client: bytes = CLIENT) -> dict[Any, list]:
        """ref -> [seq, nodes, subscribers] of every API ack sent to ``client``."""
        found: dict[Any, list] = {}
        for kind, *fields in self.frames(node, client):
            if kind == API_ACK:
                for ref, seq, nodes, subscribers, n in fields[0]:  # a run of n acks
                    for i in range(n):
                        found[ref + i] = [seq + i, nodes, subscribers]
        return found

    def nacks(self, node: str, client: bytes = CLIENT) -> dict[Any, tuple[str, str]]:
        """ref -> (code, message) of every API nack sent to ``client``."""
        found: dict[Any, tuple[str, str]] = {}
        for kind, *fields in self.frames(node, client):
            if kind == API_NACK:
                for ref, code, message, n in fields[0]:  # n refs from ref refused
                    for i in range(n):
                        found[ref + i] = (code, message)
        return found

    def replies(self, node: str, client: bytes = CLIENT) -> dict[Any, tuple[bool, Any]]:
        """ref -> (ok, result) of every request reply sent to ``client``."""
        return {
            fields[0]: (fields[1], fields[2])
            for kind, *fields in self.frames(node, client)
            if kind == API_REPLY
        }

    def entries(
        self, kind: str, *, src: str | None = None, dst: str | None = None
    ) -> list[tuple[Sent, Any]]:
        """Every message body entry of ``kind`` sent (as recorded), with its envelope.

        Data kinds (fwd, fanout, ack, ...) carry a list of entries and yield one item
        per entry; other kinds yield their single body.
        """
        found = []
        for sent in self.sent:
            if (src is None or sent.src == src) and (dst is None or sent.dst == dst):
                for message in sent.messages:
                    if isinstance(message, list) and message and message[0] == kind:
                        body = message[1] if len(message) > 1 else None
                        if isinstance(body, list):
                            found += [(sent, entry) for entry in body]
                        else:
                            found.append((sent, body))
        return found

    def log_lines(self, node: str, text: str) -> list[float]:
        """Times at which ``node`` logged a line containing ``text``."""
        return [t for t, line in self.logs[node] if text in line]

    def error_codes(self, node: str) -> dict[str, int]:
        """``node``'s current core error counters."""
        return dict(self.core(node).errors)
