"""What one turn of the node core asks the IO layer to do.

The core appends; the IO layer drains after each wake-up. Messages to a peer keep their
order, and consecutive data entries of one kind are coalesced into a single message,
so everything ready for one destination leaves in one ZeroMQ frame (batching comes
from the shape of the outbox, not from timers: a lone message is never held back).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zdps.wire import ACK, CONSUMED, NACK, UPDATE


@dataclass(slots=True)
class Outbox:
    """Pending sends, ordered per destination."""

    peers: dict[str, list[list]] = field(default_factory=dict)
    urgent: dict[str, list[list]] = field(default_factory=dict)  # the probe channel
    disconnects: list[str] = field(default_factory=list)
    deliveries: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    clients: dict[bytes, list[list]] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def send(self, endpoint: str, message: list) -> None:
        """Queue one control message to the node at ``endpoint``."""
        self.peers.setdefault(endpoint, []).append(message)

    def probe(self, endpoint: str, message: list) -> None:
        """Queue a failure-detector message: it goes on the probe channel, never behind data."""
        self.urgent.setdefault(endpoint, []).append(message)

    def take_urgent(self) -> dict[str, list[list]]:
        """Hand over the probe-channel messages now (the IO layer sends them mid-turn)."""
        urgent, self.urgent = self.urgent, {}
        return urgent

    def merge(self, endpoint: str, message: list) -> None:
        """Queue a message whose body is a map of absolute values (a scope ``update``).

        If the previous message to ``endpoint`` is of the same kind the maps are merged,
        so a subscriber that joins a thousand topics costs each peer one message.
        """
        queue = self.peers.setdefault(endpoint, [])
        if queue and queue[-1][0] == message[0] and message[0] == UPDATE:
            queue[-1][1].update(message[1])
        else:
            queue.append(message)

    def batch(self, endpoint: str, kind: str, entry: list) -> None:
        """Queue one data entry, joining the previous message if it is of the same kind."""
        _coalesce(self.peers.setdefault(endpoint, []), kind, entry)

    def reply(self, client: bytes, kind: str, *fields: object) -> None:
        """Queue one API frame to a client."""
        self.clients.setdefault(client, []).append([kind, *fields])

    def batch_reply(self, client: bytes, kind: str, entry: list) -> None:
        """Queue one ack/nack entry to a client, coalesced like ``batch``."""
        _coalesce(self.clients.setdefault(client, []), kind, entry)

    def ack(self, endpoint: str, kind: str, ack_id: int, seq: int, nodes: int, subscribers: int):
        """Queue an ack to a peer, extending the previous one when it continues a run."""
        _ack_run(self.peers.setdefault(endpoint, []), kind, ack_id, seq, nodes, subscribers)

    def client_ack(self, client: bytes, kind: str, ref: int, seq: int, nodes: int, subs: int):
        """Queue an ack to a client, extending the previous one when it continues a run."""
        _ack_run(self.clients.setdefault(client, []), kind, ref, seq, nodes, subs)

    def error(self, code: str, message: str) -> None:
        """Record bad input (the IO layer counts it and logs at most once a second)."""
        self.errors.append((code, message))

    def disconnect(self, endpoint: str) -> None:
        """Drop the connection to ``endpoint`` with anything still queued to it."""
        self.peers.pop(endpoint, None)
        self.urgent.pop(endpoint, None)
        self.disconnects.append(endpoint)

    def __bool__(self) -> bool:
        return bool(
            self.peers
            or self.urgent
            or self.disconnects
            or self.deliveries
            or self.clients
            or self.errors
            or self.log
        )


def _coalesce(queue: list[list], kind: str, entry: list) -> None:
    """Append ``entry`` to the latest message of ``kind``, else start one.

    Only acks, nacks and confirmations may be passed over: nothing depends on their
    order relative to data, while data keeps its order against everything else.
    """
    for message in reversed(queue):
        if message[0] == kind:
            message[1].append(entry)
            return
        if message[0] not in _ORDER_FREE:
            break
    queue.append([kind, [entry]])


def _ack_run(queue: list[list], kind: str, ref: int, seq: int, nodes: int, subs: int) -> None:
    """Acks are ``[ref, seq, nodes, subscribers, n]``: refs ref..ref+n-1 got seq..seq+n-1.

    A batch of publishes to one topic is acknowledged by a single entry. Acks need no
    order relative to other messages, so an ack joins the latest ack message among the
    last few queued, even when fan-out copies to the same node were queued after it.
    """
    for message in reversed(queue[-_ACK_LOOKBACK:]):
        if message[0] == kind:
            last = message[1][-1]
            n = last[4]
            if last[0] + n == ref and last[1] + n == seq and last[2] == nodes and last[3] == subs:
                last[4] = n + 1
            else:
                message[1].append([ref, seq, nodes, subs, 1])
            return
    queue.append([kind, [[ref, seq, nodes, subs, 1]]])


_ACK_LOOKBACK = 4
_ORDER_FREE = frozenset({ACK, NACK, CONSUMED})
