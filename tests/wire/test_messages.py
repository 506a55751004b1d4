"""The typed messages: each decodes what it encodes, and anything else is ProtocolError.

One valid example per kind (NODE_MESSAGES, and every request op) round-trips through
msgpack. Hypothesis then replaces any one value inside an example with arbitrary
msgpack data: decoding must give a message of the same kind or raise ProtocolError,
never another exception (which would be a bug, as in h11).
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zdps.wire import codec
from zdps.wire.answers import decode_answer
from zdps.wire.api import (
    OPS,
    Create,
    Delete,
    Drain,
    HistoryQuery,
    Info,
    Lost,
    Members,
    QueueJoin,
    QueueLeave,
    Ready,
    Status,
    Unwatch,
    Watch,
    decode_request,
)
from zdps.wire.batches import pack_batch
from zdps.wire.codec import EntryList, ProtocolError
from zdps.wire.consumers import (
    Consume,
    ConsumerAck,
    ConsumerAckEntry,
    ConsumerCreate,
    ConsumerDelete,
    ConsumerInfo,
    ConsumerList,
    ConsumerMsg,
    ConsumerMsgEntry,
    ConsumerState,
    ConsumerStateEntry,
    OwnerRep,
    OwnerReq,
)
from zdps.wire.data import (
    Ack,
    Close,
    Closed,
    ClosedEntry,
    CloseEntry,
    Configure,
    ConfigureEntry,
    Consumed,
    Fanout,
    FanoutEntry,
    Forward,
    ForwardEntry,
    Handoff,
    HandoffEntry,
    Nack,
    NackEntry,
    Queued,
    QueuedEntry,
    Retention,
    Store,
    Stored,
    StoredEntry,
    StoreEntry,
)
from zdps.wire.gossip import Bye, Hello, Peers, Ping, Resync, Sync, SyncPart, Update, sync_parts
from zdps.wire.messages import NODE_MESSAGES, decode_message
from zdps.wire.probes import Alive, Dead, Probe, ProbeAck, ProbeNack, ProbeReq, Suspect
from zdps.wire.publish_entries import PublishDecoder
from zdps.wire.requests import Barrier, BarrierOk, History, HistoryRep

pytestmark = pytest.mark.timeout(60)

EP = "tcp://127.0.0.1:7710"
B1, B2 = pack_batch([b""]), pack_batch([b"x", b"y"])
EXAMPLES = [
    Hello(EP, {"b": (EP, 5)}, EP, True, "tcp://127.0.0.1:1"),
    Peers({"b": (EP, 5)}),
    Ping("0123456789abcdef", EP, "fedcba9876543210"),
    Bye(),
    Sync({b"t\x00": 2, b"p.": 1}),
    Update({b"t\x00": 0}),
    Barrier(3),
    BarrierOk(3),
    Forward([ForwardEntry("t", 2, B2, 4, 1, 2), ForwardEntry("u", 1, B1, 0, 2, 1)]),
    Fanout([FanoutEntry("t", 1, 17, 2, B2)]),
    Ack([(1, 2, 3, 4, 5)]),
    Nack([NackEntry(1, "timeout", "late")]),
    Close([CloseEntry("t", 2, 1)]),
    Closed([ClosedEntry("t", 3, 17), ClosedEntry("t", 3, 17, False)]),
    Consumed(12),
    Resync(),
    Probe(1),
    ProbeReq(2, "c"),
    ProbeAck(1),
    ProbeNack(2),
    Suspect("c", 9, 0),
    Alive("a", 9, 1),
    Dead("c", 9, 2),
    Store([StoreEntry("t", 1, 17, 2, B2, True)]),
    Stored([StoredEntry("t", 17, 1)]),
    Handoff([HandoffEntry("t", Retention(5, 60.0), [[17, 1, 2, B2, 0.5]])]),
    History(7, HistoryQuery("t", since=3)),
    HistoryRep(7, {"topic": "t", "entries": [], "more": False}),
    Configure([ConfigureEntry("t", Retention(5, 60.0), 3, 1)]),
    Queued([QueuedEntry("t", b"\x1f=w\x1ft\x00", 1, 17, 2, B2)]),
    OwnerReq(5, ConsumerInfo("t", "w")),
    OwnerRep(5, False, {"code": "no_consumer", "message": "none"}),
    ConsumerMsg([ConsumerMsgEntry("t", "w", 17, 3, 2, b"x")]),
    ConsumerAck([ConsumerAckEntry("t", "w", 17, 3, 1)]),
    ConsumerState(
        [
            ConsumerStateEntry("t", "w", ConsumerCreate("t", "w", 5.0, 3, 10, "all"), (17, 2), []),
            ConsumerStateEntry("t", "v", None, (0, 0), [[17, 3, 2]]),
        ]
    ),
    SyncPart(1, True, {b"t\x00": 2, b"p.": 1}),
]
OP_EXAMPLES = [
    Info(),
    Status(),
    Members("t"),
    Watch("t"),
    Unwatch(4),
    Ready("token", [b"t\x00", b""]),
    Delete("t"),
    Create("t", Retention(0, 1.5)),
    HistoryQuery("t", None, (17, 2), (18, 0), 50),
    Lost("t", 5, 3, "host pid 1"),
    Drain(12.5),
    QueueJoin("w", b"t\x00"),
    QueueLeave("w", b"p."),
    ConsumerCreate("t", "w", 5.0, 3, 10, 7),
    ConsumerInfo("t", "w"),
    ConsumerList("t"),
    ConsumerDelete("t", "w"),
    Consume("t", "w"),
]


def over_the_wire(raw: Any) -> Any:
    return codec.unpack(codec.pack(raw))


def test_there_is_an_example_of_every_kind_and_op() -> None:
    assert [type(m) for m in EXAMPLES] == list(NODE_MESSAGES)
    assert {op.OP for op in OP_EXAMPLES} == set(OPS)


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: m.KIND)
def test_every_kind_decodes_what_it_encodes(message: Any) -> None:
    decoded = decode_message(over_the_wire(message.encode()))
    if isinstance(message, EntryList):
        assert decoded.rejects == ()
        assert [tuple(e) for e in decoded.entries] == [
            tuple(e) if len(e) == len(d) else (*e, d[-1])
            for e, d in zip(message.entries, decoded.entries, strict=True)
        ]
    else:
        assert decoded == message


def test_a_sync_in_parts_carries_every_group_once_in_order() -> None:
    counts = {b"%d\x00" % i: i % 3 + 1 for i in range(10)}
    parts = sync_parts(counts, 4)
    assert [(p.part, p.last, len(p.counts)) for p in parts] == [
        (0, False, 4), (1, False, 4), (2, True, 2)
    ]  # fmt: skip
    assert {g: c for p in parts for g, c in p.counts.items()} == counts
    assert sync_parts({}, 4) == [SyncPart(0, True, {})]


@pytest.mark.parametrize(
    "body",
    [
        {"part": -1, "last": True, "counts": {}},
        {"part": True, "last": True, "counts": {}},
        {"part": 0, "last": 1, "counts": {}},
        {"part": 0, "last": True, "counts": {b"t\x00": -1}},
        {"part": 0, "last": True},
    ],
)
def test_a_bad_sync_part_is_malformed(body: dict) -> None:
    with pytest.raises(ProtocolError):
        decode_message(over_the_wire(["sync_part", body]))


@pytest.mark.parametrize("op", OP_EXAMPLES, ids=lambda op: op.OP)
def test_every_op_decodes_what_it_encodes(op: Any) -> None:
    request = decode_request(over_the_wire([9, op.OP, op.args()]))
    assert request.ref == 9 and request.op == op


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place inside ``value`` (list indexes and map keys) that can be replaced."""
    found = [prefix]
    if isinstance(value, list):
        for i, item in enumerate(value):
            found += paths(item, (*prefix, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    return found


def replaced(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, list):
        return [replaced(v, rest, new) if i == head else v for i, v in enumerate(value)]
    return {k: replaced(v, rest, new) if k == head else v for k, v in value.items()}


ANY = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70).filter(lambda n: -(2**63) <= n < 2**64)
    | st.floats(allow_nan=True)
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(data=st.data(), new=ANY)
def test_any_damaged_message_is_a_protocol_error_or_still_well_formed(data: Any, new: Any) -> None:
    message = data.draw(st.sampled_from(EXAMPLES), label="kind")
    raw = over_the_wire(message.encode())
    path = data.draw(st.sampled_from(paths(raw)), label="path")
    try:
        decoded = decode_message(over_the_wire(replaced(raw, path, new)))
    except ProtocolError:
        return
    assert type(decoded) is type(message)


V = codec.PROTOCOL_VERSION
API_FRAMES = [
    *([V, "req", 9, op.OP, op.args()] for op in OP_EXAMPLES),
    [V, "pub", [[3, "t", 2, B2], [5, "t", 1, B1, 2], [0, "u", 2, B2]]],
    [V, "ack", [[1, 2, 3, 4, 5], [9, 9, 1, 1, 1, "newer field"]]],
    [V, "nack", [[1, "timeout", "late", 3]]],
    [V, "rep", 5, True, {"any": "result"}],
    [V, "rep", 5, False, {"code": "timeout", "message": "late"}],
    [V, "event", 5, {"topic": "t"}],
]


def decode_as_read(frame: list) -> Any:
    """As the node and the clients read a frame: decode_api, then the kind's decoder."""
    kind, *fields = codec.decode_api(codec.pack(frame))
    if kind == "req":
        return decode_request(fields)
    if kind == "pub":
        if len(fields) != 1:
            raise ProtocolError("malformed", "a pub frame has one field")
        entries, rejects = PublishDecoder(16).decode(fields[0])
        assert not rejects or all(
            r.code in ("malformed", "invalid_topic", "too_large") for r in rejects
        )
        return entries, rejects
    return decode_answer(kind, fields)


@pytest.mark.parametrize("frame", API_FRAMES, ids=lambda f: f[1])
def test_every_api_example_decodes_whole(frame: list) -> None:
    decoded = decode_as_read(frame)
    if frame[1] == "pub":
        assert decoded[1] == [] and [e[2] for e in decoded[0]] == [2, 1, 2]


@settings(max_examples=400, deadline=None)
@given(data=st.data(), new=ANY)
def test_any_damaged_api_frame_is_a_protocol_error_or_well_formed(data: Any, new: Any) -> None:
    """As the node and the clients read frames: decode_api, then the kind's decoder."""
    frame = data.draw(st.sampled_from(API_FRAMES), label="frame")
    path = data.draw(st.sampled_from(paths(frame)), label="path")
    with contextlib.suppress(ProtocolError):
        decode_as_read(replaced(frame, path, new))


@pytest.mark.parametrize("frame", [b"\xc1", b"\x92\x01", b"\xd9\x01\xff"])
def test_an_undecodable_frame_says_why(frame: bytes) -> None:
    """msgpack's own exceptions may have no text: the reason is never left empty."""
    with pytest.raises(ProtocolError) as refused:
        codec.unpack(frame)
    reason = refused.value.message.removeprefix("undecodable msgpack:").strip()
    assert reason and refused.value.code == "malformed"
