"""Membership and scope gossip on the data link (docs/PROTOCOL.md §4, §5).

``hello``/``peers``/``ping``/``bye`` build the full mesh; ``sync``/``update``/``resync``
replicate the scope overlay's group counts, as Erlang's pg does with its own messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from zdps.endpoints import is_dialable
from zdps.topics import all_valid_groups, is_valid_group
from zdps.wire.codec import NodeMessage, need_int, need_map
from zdps.wire.errors import malformed
from zdps.wire.limits import U64

PeerList = dict[str, tuple[str, int]]  # node id -> (advertised endpoint, incarnation)
Counts = dict[bytes, int]  # group -> local subscribers
# Groups in one ``sync_part`` (§5): a part is decoded and applied in about 8 ms (50 when
# a table of a million doubles), so a node taking in a million groups still answers
# probes between parts well within ``probe_timeout``; 20,000 took 40-125 ms.
SYNC_PART_GROUPS = 5_000
MAX_SYNC_PARTS = 2**32  # parts of one sync (a bound for the decoder, far above any use)


def decode_peer_list(value: Any) -> PeerList:
    """``{id: [endpoint, incarnation]}``, checked as a whole before anything is learned."""
    if type(value) is not dict:
        raise malformed("peer lists are {id: [endpoint, incarnation]}")
    peers: PeerList = {}
    for node, info in value.items():
        if not (
            type(node) is str
            and node
            and type(info) is list
            and len(info) == 2
            and is_dialable(info[0])
            and type(info[1]) is int
        ):
            raise malformed("peer lists are {id: [endpoint, incarnation]}")
        peers[node] = (info[0], info[1])
    return peers


def decode_counts(value: Any, kind: str) -> Counts:
    """``{group: count}``: every key a valid group (bin), every count an int >= 0."""
    if type(value) is not dict:
        raise malformed(f"{kind} carries a map {{group: count}}")
    counts = value.values()
    if (
        not counts or (set(map(type, counts)) == {int} and 0 <= min(counts) <= max(counts) < U64)
    ) and all_valid_groups(value.keys()):
        return value  # all good, checked in bulk; else find the first bad one below
    for group, count in value.items():
        if type(group) is not bytes or not is_valid_group(group):
            raise malformed(f"invalid group {group!r}")
        if type(count) is not int or not 0 <= count < U64:
            raise malformed(f"invalid count {count!r} for group {group!r}")
    return value


@dataclass(frozen=True, slots=True)
class Hello(NodeMessage):
    """Introduces the sender; ``reply`` asks for a hello back (§4.2). A hello that carries
    ``peers`` is answered with the receiver's; one without asks for no list (§4.1)."""

    KIND = "hello"
    SHAPE = (
        "{advertise: endpoint, peers?: peer list, dialed?: str, reply?: bool, echo?: str, "
        "dropped?: str, protocol?: int, kinds?: [str], refused?: str, challenge?: str, "
        "answer?: str}"
    )
    MEMBERSHIP = True
    advertise: str  # the endpoint peers dial to reach the sender
    peers: PeerList | None  # the sender's alive peers; None: not sent, and none wanted
    dialed: str | None  # the endpoint the sender dialed to send this
    reply: bool
    echo: str | None = None  # in an answer: the asker's ``dialed`` (a seed answered)
    dropped: str | None = None  # the node id the sender declared dead at ``dialed``
    protocol: int | None = None  # the sender's protocol version (§11)
    kinds: tuple[str, ...] | None = None  # the message kinds the sender speaks (§11)
    refused: str | None = None  # the sender will not be our peer, and why (§11)
    challenge: str | None = None  # to a process with the sender's id: prove it (§4.2)
    answer: str | None = None  # the challenge of the hello this one answers (§4.2)

    @classmethod
    def decode(cls, body: Any) -> Hello:
        body = need_map(body, "hello")
        advertise = body.get("advertise")
        if not is_dialable(advertise):
            raise malformed(f"hello advertises no dialable endpoint: {advertise!r}")
        dialed, echo, dropped = body.get("dialed"), body.get("echo"), body.get("dropped")
        protocol, kinds, refused = body.get("protocol"), body.get("kinds"), body.get("refused")
        challenge, answer = body.get("challenge"), body.get("answer")
        if kinds is not None and not (type(kinds) is list and all(type(k) is str for k in kinds)):
            raise malformed("hello kinds are a list of str")
        return cls(
            advertise,
            decode_peer_list(body["peers"]) if "peers" in body else None,
            dialed if type(dialed) is str else None,
            body.get("reply") is True,
            echo if type(echo) is str else None,
            dropped if type(dropped) is str else None,
            protocol if type(protocol) is int else None,
            tuple(kinds) if kinds is not None else None,
            refused if type(refused) is str else None,
            challenge if type(challenge) is str else None,
            answer if type(answer) is str else None,
        )

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"advertise": self.advertise}
        if self.peers is not None:
            body["peers"] = self.peers
        body["dialed"] = self.dialed
        body["reply"] = self.reply
        if self.echo is not None:
            body["echo"] = self.echo
        if self.dropped is not None:
            body["dropped"] = self.dropped
        if self.protocol is not None:
            body["protocol"] = self.protocol
        if self.kinds is not None:
            body["kinds"] = list(self.kinds)
        for key in ("refused", "challenge", "answer"):
            if (value := getattr(self, key)) is not None:
                body[key] = value
        return body


@dataclass(frozen=True, slots=True)
class Peers(NodeMessage):
    """The sender's alive peers, in answer to a ping whose view differs (§4.3)."""

    KIND = "peers"
    SHAPE = "peer list"
    MEMBERSHIP = True
    peers: PeerList

    @classmethod
    def decode(cls, body: Any) -> Peers:
        return cls(decode_peer_list(body))

    def body(self) -> PeerList:
        return self.peers


@dataclass(frozen=True, slots=True)
class Ping(NodeMessage):
    """Every heartbeat: the sender's view and scope digests, for anti-entropy (§4.3, §5)."""

    KIND = "ping"
    SHAPE = "{view?: str, endpoint?: endpoint, scope?: str}"
    MEMBERSHIP = True
    view: str | None  # digest of the sender's live nodes; None never matches
    endpoint: str | None  # the sender's advertised endpoint, if dialable
    scope_digest: str | None = None  # digest of the sender's local group counts

    @classmethod
    def decode(cls, body: Any) -> Ping:
        body = need_map(body, "ping")
        view, endpoint, digest = body.get("view"), body.get("endpoint"), body.get("scope")
        return cls(
            view if type(view) is str else None,
            endpoint if is_dialable(endpoint) else None,
            digest if type(digest) is str else None,
        )

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"view": self.view, "endpoint": self.endpoint}
        if self.scope_digest is not None:
            body["scope"] = self.scope_digest
        return body


@dataclass(frozen=True, slots=True)
class _Empty(NodeMessage):
    """A message whose body is an empty map, not checked: only its kind matters."""

    SHAPE = "{}"

    @classmethod
    def decode(cls, body: Any) -> Any:
        return cls()

    def body(self) -> dict:
        return {}


@dataclass(frozen=True, slots=True)
class Bye(_Empty):
    """A graceful leave (§4.5)."""

    KIND = "bye"
    MEMBERSHIP = True


@dataclass(frozen=True, slots=True)
class _Counts(NodeMessage):
    """Group counts of the sender: ``{group: count}``, every group checked."""

    SHAPE = "{group bin: count int}"
    counts: Counts = field(default_factory=dict)

    @classmethod
    def decode(cls, body: Any) -> Any:
        return cls(decode_counts(body, cls.KIND))

    def body(self) -> Counts:
        return self.counts


@dataclass(frozen=True, slots=True)
class Sync(_Counts):
    """All of the sender's local group counts: replaces what is known of it (§5)."""

    KIND = "sync"


@dataclass(frozen=True, slots=True)
class SyncPart(NodeMessage):
    """Part ``part`` of a ``sync`` too large for one frame (§5), sent to a peer that
    speaks this kind; ``last`` ends the sync. The parts of one sync together replace
    what is known of the sender, as one ``sync`` would; each is applied as it comes."""

    KIND = "sync_part"
    SHAPE = "{part: int, last: bool, counts: {group bin: count int}}"
    part: int  # 0 begins a sync
    last: bool
    counts: Counts

    @classmethod
    def decode(cls, body: Any) -> SyncPart:
        body = need_map(body, "sync_part")
        part = need_int(body.get("part"), "sync_part part", 0, MAX_SYNC_PARTS)
        last = body.get("last")
        if type(last) is not bool:
            raise malformed("sync_part last is a bool")
        return cls(part, last, decode_counts(body.get("counts"), "sync_part"))

    def body(self) -> dict[str, Any]:
        return {"part": self.part, "last": self.last, "counts": self.counts}

    def messages(self) -> int:
        """Each group counts as a message where the outbox splits frames (FRAME_MESSAGES):
        every part goes in a frame of its own."""
        return len(self.counts)


def sync_parts(counts: Counts, size: int = SYNC_PART_GROUPS) -> list[SyncPart]:
    """``counts`` as the parts of one sync, ``size`` groups each (one part if empty)."""
    assert size > 0
    items = iter(counts.items())
    chunks = [dict(islice(items, size)) for _ in range(max(1, -(-len(counts) // size)))]
    last = len(chunks) - 1
    return [SyncPart(i, i == last, chunk) for i, chunk in enumerate(chunks)]


@dataclass(frozen=True, slots=True)
class Update(_Counts):
    """Changed local group counts, absolute (0: left); the outbox merges queued ones."""

    KIND = "update"


@dataclass(frozen=True, slots=True)
class Resync(_Empty):
    """Asks for a full ``sync``: a ping's scope digest differed (§5)."""

    KIND = "resync"
