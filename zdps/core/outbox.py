"""What one turn of the node core asks the IO layer to do, and how it becomes frames.

The core appends; the IO layer (the daemon, or the simulator) takes the outbox after
each wake-up and carries it out with ``envelopes``, so both make the same frames.
Messages to a peer keep their order, and consecutive entries of one entry-list kind are
coalesced into a single message, so everything ready for one destination leaves in
one ZeroMQ frame. Batching comes from the shape of the outbox, not from timers, except
for what nobody waits on: acknowledgements of windowed publishers (ack_pacing.py) and
copies to replicas that deliver to nobody (copy_pacing.py) go at most once a millisecond.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from zdps.core.log_events import LogEvent, log_event
from zdps.wire.answers import error_result
from zdps.wire.api import API_ACK, API_EVENT, API_NACK, API_REPLY
from zdps.wire.codec import EntryList, NodeMessage, encode_envelope
from zdps.wire.data import Ack, Consumed, Fanout, Forward, Nack, Store
from zdps.wire.gossip import SYNC_PART_GROUPS, SyncPart, Update

FRAME_BUDGET = 32 * 1024 * 1024  # envelopes are split to stay under this many bytes
FRAME_MESSAGES = 8192  # and to carry at most this many messages (a probe waits for one)
_BULK = (Forward, Fanout, Store, SyncPart)  # the bulk: counted for FRAME_MESSAGES
assert 2 * SYNC_PART_GROUPS > FRAME_MESSAGES  # so no two sync_parts share a frame
_ORDER_FREE = (Ack, Nack, Consumed)  # nothing depends on their order relative to data
_ACK_LOOKBACK = 4


@dataclass(slots=True)
class Outbox:
    """Pending sends, ordered per destination."""

    peers: dict[str, list[NodeMessage]] = field(default_factory=dict)  # the data links
    # Copies nobody waits on, to peers this turn has nothing else for (copy_pacing.py)
    lazy: dict[str, list[NodeMessage]] = field(default_factory=dict)
    probes: dict[str, list[NodeMessage]] = field(default_factory=dict)  # the probe links
    disconnects: list[str] = field(default_factory=list)
    # To the local PUB, in order: (topic, seq, epoch, n, batch) for n messages from seq
    # on, n = 0 and batch None for a topic's final ``closed``.
    deliveries: list = field(default_factory=list)
    clients: dict[bytes, list[list]] = field(default_factory=dict)  # API frames [kind, ...]
    # Pushes to members here, of queue groups (queues.py) and durable consumers
    # (consumers.py), in order: (member, key, API frame [kind, ...], messages lost if no
    # member here can take it); one the member cannot take goes to another member.
    pushes: list[tuple[bytes, bytes, list, int]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    log: list[LogEvent] = field(default_factory=list)

    # ------------------------------------------------------------------ to peers

    def send(self, endpoint: str, message: NodeMessage) -> None:
        """Queue one message to the node at ``endpoint`` on its data link."""
        self.peers.setdefault(endpoint, []).append(message)

    def probe(self, endpoint: str, message: NodeMessage) -> None:
        """Queue a failure-detector message: it goes on the probe link, never behind data."""
        self.probes.setdefault(endpoint, []).append(message)

    def take_probes(self) -> dict[str, list[NodeMessage]]:
        """Hand over the probe-link messages now (the IO layer sends them mid-turn)."""
        probes, self.probes = self.probes, {}
        return probes

    def update(self, endpoint: str, message: Update) -> None:
        """Queue a scope ``update``; absolute counts, so it merges into a queued one.

        A subscriber that joins a thousand topics costs each peer one message.
        """
        queue = self.peers.setdefault(endpoint, [])
        if queue and type(queue[-1]) is Update:
            queue[-1].counts.update(message.counts)
        else:
            queue.append(Update(dict(message.counts)))

    def entry(self, endpoint: str, kind: type[EntryList], entry: Any) -> None:
        """Queue one entry, joining the latest message of ``kind`` if only acks follow it.

        Only acks, nacks and confirmations may be passed over: nothing depends on their
        order relative to data, while data keeps its order against everything else.
        """
        _enqueue(self.peers, endpoint, kind, entry)

    def lazy_entry(self, endpoint: str, kind: type[EntryList], entry: Any) -> None:
        """Queue an entry nobody waits on: it joins this turn's frame to ``endpoint`` if
        there is one, else it may be held for a while (copy_pacing.py)."""
        _enqueue(self.peers if endpoint in self.peers else self.lazy, endpoint, kind, entry)

    def ack(
        self, endpoint: str, ack_id: int, seq: int, nodes: int, subscribers: int, n: int
    ) -> None:
        """Queue the ack of a peer's batch ``ack_id``: its ``n`` messages got seqs
        seq..seq+n-1. It joins an ``ack`` message among the last few queued."""
        queue = self.peers.setdefault(endpoint, [])
        entry = [ack_id, seq, nodes, subscribers, n]
        for message in reversed(queue[-_ACK_LOOKBACK:]):
            if type(message) is Ack:
                message.entries.append(entry)
                return
        queue.append(Ack([entry]))

    def disconnect(self, endpoint: str) -> None:
        """Drop the connection to ``endpoint`` with anything still queued to it."""
        self.peers.pop(endpoint, None)
        self.lazy.pop(endpoint, None)
        self.probes.pop(endpoint, None)
        self.disconnects.append(endpoint)

    # ------------------------------------------------------------------ to clients

    def reply(self, client: bytes, ref: int, result: Any) -> None:
        """A request's successful answer."""
        self.clients.setdefault(client, []).append([API_REPLY, ref, True, result])

    def fail(self, client: bytes, ref: int, code: str, message: str) -> None:
        """A request's failure (ref 0: a frame that could not be attributed)."""
        answer = [API_REPLY, ref, False, error_result(code, message)]
        self.clients.setdefault(client, []).append(answer)

    def event(self, client: bytes, ref: int, body: dict) -> None:
        """A watch update."""
        self.clients.setdefault(client, []).append([API_EVENT, ref, body])

    def client_ack(
        self, client: bytes, ref: int, seq: int, nodes: int, subscribers: int, n: int = 1
    ) -> None:
        """Queue the ack of ``n`` publishes of a client (refs ref..ref+n-1 got seqs
        seq..seq+n-1), extending the previous run when this continues it.

        Runs are ``[ref, seq, nodes, subscribers, n]``; clients number their publishes
        consecutively, so a stream of batches to one topic is acknowledged by one entry.
        """
        queue = self.clients.setdefault(client, [])
        for frame in reversed(queue[-_ACK_LOOKBACK:]):
            if frame[0] == API_ACK:
                runs = frame[1]
                last = runs[-1]
                k = last[4]
                if (
                    last[0] + k == ref
                    and last[1] + k == seq
                    and last[2] == nodes
                    and last[3] == subscribers
                ):
                    last[4] = k + n
                else:
                    runs.append([ref, seq, nodes, subscribers, n])
                return
        queue.append([API_ACK, [[ref, seq, nodes, subscribers, n]]])

    def push(self, member: bytes, key: bytes, frame: list, lost: int) -> None:
        """Queue a push to ``member`` of ``key``; ``lost``: the messages it carries that
        nothing brings again if no member here takes them (0: they go again anyway)."""
        self.pushes.append((member, key, frame, lost))

    def client_nack(self, client: bytes, ref: int, code: str, message: str, n: int = 1) -> None:
        """Queue a refusal of ``n`` publishes of a client, coalesced like ``batch``."""
        queue = self.clients.setdefault(client, [])
        for frame in reversed(queue):
            if frame[0] == API_NACK:
                frame[1].append([ref, code, message, n])
                return
            if frame[0] != API_ACK:
                break
        queue.append([API_NACK, [[ref, code, message, n]]])

    # ------------------------------------------------------------------ to the IO layer

    def error(self, code: str, message: str) -> None:
        """Record bad input (the IO layer logs it at most once a second per code)."""
        self.errors.append((code, message))

    def note(self, event: str, level: str = "info", every: float = 0.0, **fields: Any) -> None:
        """Tell the operator what happened (log_events.py)."""
        self.log.append(log_event(event, level, every, **fields))

    def __bool__(self) -> bool:
        return bool(
            self.peers
            or self.lazy
            or self.probes
            or self.disconnects
            or self.deliveries
            or self.clients
            or self.pushes
            or self.errors
            or self.log
        )


def _enqueue(
    queues: dict[str, list[NodeMessage]], endpoint: str, kind: type[EntryList], entry: Any
) -> None:
    """``Outbox.entry``'s rule, for the data links or the lazy queues."""
    queue = queues.get(endpoint)
    if queue is None:
        queue = queues[endpoint] = []
    for message in reversed(queue):
        if type(message) is kind:
            message.entries.append(entry)  # type: ignore[attr-defined]
            return
        if type(message) not in _ORDER_FREE:
            break
    queue.append(kind([entry]))


def envelopes(header: tuple[str, str, int], messages: list[NodeMessage]) -> Iterator[bytes]:
    """Envelopes carrying ``messages`` in order, each under FRAME_BUDGET when possible.

    A batch too large for one frame is halved (whole messages first, then the entries
    of a single batch message), so a burst of large payloads never becomes a frame the
    peer would refuse. So is one with more than FRAME_MESSAGES messages: the peer
    handles a frame whole before it reads the next, a probe included.
    """
    frame = None
    if sum(m.messages() for m in messages if isinstance(m, _BULK)) <= FRAME_MESSAGES:
        frame = encode_envelope(*header, [m.encode() for m in messages])
        if len(frame) <= FRAME_BUDGET:
            yield frame
            return
    if len(messages) > 1:
        half = len(messages) // 2
        yield from envelopes(header, messages[:half])
        yield from envelopes(header, messages[half:])
    elif isinstance(messages[0], EntryList) and len(messages[0].entries) > 1:
        for part in messages[0].halves():
            yield from envelopes(header, [part])
    else:  # one entry: far below the 256 MiB a peer accepts
        yield frame or encode_envelope(*header, [m.encode() for m in messages])
