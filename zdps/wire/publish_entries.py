"""A client's publish entries as its node checks them (docs/PROTOCOL.md §8.2):
``PublishDecoder`` against the node's ``max_payload`` and ``max_topic``."""

from __future__ import annotations

from typing import Any, NamedTuple

from zdps.topics import MAX_TOPIC_BYTES
from zdps.wire.api import need_topic
from zdps.wire.batches import MAX_BATCH, MAX_BATCH_BYTES, check_batch, pack_batch, split_oversized
from zdps.wire.data import LEVEL_OWNER, LEVEL_REPLICATED
from zdps.wire.errors import E_INVALID_TOPIC, E_TOO_LARGE, ProtocolError, malformed
from zdps.wire.limits import U64

MAX_VALID_TOPICS = 100_000  # topics remembered as valid by a node (bounded)


class PublishEntry(NamedTuple):
    ref: int  # of the first message, the others' follow; 0: no ack wanted
    topic: str
    n: int  # messages in the batch
    batch: bytes  # their payloads (batches.py)
    level: int = LEVEL_OWNER
    lazy: bool = False  # the client does not wait on this ack alone: it may be paced


class PublishReject(NamedTuple):
    """Bad publishes: ``n`` refs from ``ref`` on are nacked unless ``ref`` is 0."""

    ref: int
    code: str
    message: str
    n: int = 1


class PublishDecoder:
    """Checks ``pub`` entries against the node's ``max_payload`` and ``max_topic``,
    remembering valid topics.

    Checking a topic costs more than the rest of an entry, and publishers reuse few
    topics, so topics already found valid are remembered (at most MAX_VALID_TOPICS).
    A batch's payloads are checked in one call at C speed (``check_batch``). A batch
    with payloads over the limit is refused for those alone: the others go on, as
    batches of the runs between them.
    """

    def __init__(self, max_payload: int, max_topic: int = MAX_TOPIC_BYTES) -> None:
        self.max_payload = max_payload
        self.max_topic = max_topic  # bytes of UTF-8, at most MAX_TOPIC_BYTES (the protocol's)
        self._valid: set[str] = set()

    def decode(self, body: Any) -> tuple[list, list[PublishReject]]:
        """The entries as ``[ref, topic, n, batch, level, lazy]`` (PublishEntry's fields),
        checked."""
        if type(body) is not list:
            raise malformed("a publish is [1, 'pub', [entries]]")
        entries: list[PublishEntry] = []
        rejects: list[PublishReject] = []
        for raw in body:
            try:
                entries.append(self._checked(raw))
            except ProtocolError as exc:
                if exc.code == E_TOO_LARGE:
                    self._split(raw, entries, rejects)
                    continue
                ref, n = _refs(raw)
                rejects.append(PublishReject(ref, exc.code, exc.message, n))
        return entries, rejects

    def _checked(self, raw: Any) -> Any:
        """One entry, checked in place (a list, as data.py's hot kinds), or ProtocolError."""
        if type(raw) is not list or not 4 <= len(raw) <= 6:
            raise malformed("a publish is [ref, topic, n, batch, level?, lazy?]")
        ref, topic, n, blob, *more = raw
        if type(n) is not int or not 0 < n <= MAX_BATCH:
            raise malformed(f"a publish batch holds 1 to {MAX_BATCH} messages")
        if type(ref) is not int or not 0 <= ref <= U64 - n:
            raise malformed("a publish ref is an integer from 0, its batch's refs below 2**64")
        if more:
            if type(more[0]) is not int or more[0] not in (LEVEL_OWNER, LEVEL_REPLICATED):
                raise malformed("a publish's level is 1 (owner) or 2 (replicated)")
            if len(more) > 1 and type(more[1]) is not bool:
                raise malformed("a publish's lazy is true or false")
        else:
            raw.append(LEVEL_OWNER)
        if len(raw) == 5:
            raw.append(False)
        if type(topic) is not str or topic not in self._valid:
            if len(need_topic(topic).encode()) > self.max_topic:
                why = f"topic is over max_topic ({self.max_topic} bytes of UTF-8)"
                raise ProtocolError(E_INVALID_TOPIC, why)
            if len(self._valid) >= MAX_VALID_TOPICS:
                self._valid.clear()
            self._valid.add(topic)
        if type(blob) is not bytes:
            raise malformed("a publish batch is binary")
        if n > 1 and len(blob) > MAX_BATCH_BYTES:
            raise malformed(f"a publish batch of over one message is at most {MAX_BATCH_BYTES} B")
        check_batch(blob, n, self.max_payload)
        return raw

    def _split(self, raw: list, entries: list, rejects: list[PublishReject]) -> None:
        """A checked entry with payloads over the limit: the rest go on in runs."""
        ref, topic, n, blob, level, lazy = raw
        runs, over = split_oversized(blob, n, self.max_payload)
        for offset, payloads in runs:
            first = ref + offset if ref else 0
            entries.append([first, topic, len(payloads), pack_batch(payloads), level, lazy])
        rejects += [
            PublishReject(
                ref + i if ref else 0,
                E_TOO_LARGE,
                f"payload is {size} bytes, the limit is {self.max_payload}",
            )
            for i, size in over
        ]


def _refs(raw: Any) -> tuple[int, int]:
    """The refs a bad entry names: its ref if an int, and its n if a valid count."""
    if type(raw) is not list or not raw or type(raw[0]) is not int or not 0 < raw[0] < U64:
        return 0, 1
    n = raw[2] if len(raw) > 2 and type(raw[2]) is int and 0 < raw[2] <= MAX_BATCH else 1
    return raw[0], min(n, U64 - raw[0])
