"""The publish frame a client is filling: its messages as one batch per run of a topic.

A node handles a batch as one unit (docs/PROTOCOL.md §7), so consecutive messages to
one topic go into one ``pub`` entry, whatever their number. A frame is full at
``batch`` messages or FRAME_BYTES of payload: a frame past the node's 256 MiB limit
would cost the connection, and one much larger than that only delays the first ack.
"""

from __future__ import annotations

from zdps.client.protocol import to_bytes
from zdps.wire.api import encode_publish, publish_entry
from zdps.wire.batches import MAX_BATCH

FRAME_BYTES = 4 * 1024 * 1024  # payload bytes after which a frame is sent


class PublishFrame:
    """Messages waiting to be sent, grouped into runs of one topic in order."""

    __slots__ = ("_payloads", "_topic", "count", "runs", "size")

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.runs: list[tuple[str, list[bytes]]] = []
        self.count = 0  # messages
        self.size = 0  # payload bytes
        self._topic: str | None = None
        self._payloads: list[bytes] = []

    def add(self, topic: str, payload: bytes) -> None:
        """Add a message; one over FRAME_BYTES is a batch of its own (it fills the frame),
        so that a payload the node refuses as too large takes no other message with it."""
        size = len(payload)
        if topic != self._topic or len(self._payloads) >= MAX_BATCH or size > FRAME_BYTES:
            self._payloads = []
            self._topic = topic if size <= FRAME_BYTES else None
            self.runs.append((topic, self._payloads))
        self._payloads.append(payload)
        self.count += 1
        self.size += size

    def add_many(self, topic: str, payloads: list, limit: int) -> int:
        """Add the first messages of ``payloads`` (bytes, or str as UTF-8), at most
        ``limit`` and none once the frame is full; how many were added (at least one).

        The usual case, a run that fits, costs a few calls at C speed whatever its
        length; anything else goes message by message.
        """
        taken = payloads if len(payloads) <= limit else payloads[:limit]
        if not taken:
            return 0
        try:
            size = len(b"".join(taken))  # a TypeError names a payload that is not bytes
        except TypeError:
            taken = [to_bytes(payload) for payload in taken]
            size = sum(map(len, taken))
        run = self._payloads if topic == self._topic else []
        if self.size + size < FRAME_BYTES and len(run) + len(taken) <= MAX_BATCH:
            if run:
                run.extend(taken)
            else:
                self._topic, self._payloads = topic, list(taken)
                self.runs.append((topic, self._payloads))
            self.count += len(taken)
            self.size += size
            return len(taken)
        added = 0
        for payload in taken:
            self.add(topic, payload)
            added += 1
            if self.size >= FRAME_BYTES:
                break
        return added

    def full(self, batch: int) -> bool:
        return self.count >= batch or self.size >= FRAME_BYTES

    def take(self, first_ref: int, level: int, lazy: bool) -> bytes:
        """The ``pub`` frame of everything added, with refs from ``first_ref`` on (0:
        no acks), in order; the frame starts empty again.

        ``lazy``: the publisher does not wait on these acknowledgements before it goes
        on, so the nodes may pace them (docs/PROTOCOL.md §7.4). A frame it waits on
        right after sending is not lazy: its acks, and those held ahead of them, come
        at once.
        """
        entries, ref = [], first_ref
        for topic, payloads in self.runs:
            entries.append(publish_entry(ref, topic, payloads, level, lazy))
            if ref:
                ref += len(payloads)
        self._reset()
        return encode_publish(entries)
