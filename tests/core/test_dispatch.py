"""NodeCore's dispatch (zdps/core/node.py): bad input is ``ProtocolError`` and nothing else.

* An envelope of another scope, or one that cannot be read, is counted and dropped; a
  message from a sender that is not an alive peer is ignored (``ignored_unknown_peer``).
* Bad input is counted by code, nacked where there is a ref, and never costs the
  valid entries around it: a bad message is skipped and the next one processed.
* A bad entry of any entry-list kind is skipped alone and counted; the entries around it
  take effect. One that names an ``ack_id`` in its own field (fwd, close, configure)
  is refused under that id and no other field (a fwd entry's ack id is its fourth
  field, after ``topic, n, batch``; never its ``n``, ``hops`` or ``level``).
* A bad data entry counts as processed for flow control with the message count it
  names (its ``n``, if readable), as its sender counted it in flight.
* Any other exception raised while handling input is a bug: it propagates out of the
  core (the daemon logs it and exits 1) instead of being counted as bad input. No
  message from a peer can make the core raise.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.core.helpers import cluster, topic_owned_by
from tests.core.node_net import SimNet, mesh
from tests.wire.test_messages import ANY, EXAMPLES, over_the_wire, paths, replaced
from zdps.core.tunables import CoreConfig
from zdps.topics import exact_group
from zdps.wire import (
    ACK,
    CLOSE,
    CLOSED,
    CONFIGURE,
    CONSUMED,
    E_INVALID_TOPIC,
    E_MALFORMED,
    FANOUT,
    FORWARD,
    HANDOFF,
    HELLO,
    NACK,
    PEERS,
    PING,
    PROTOCOL_VERSION,
    QUEUED,
    STORE,
    STORED,
    encode_api,
    pack,
)
from zdps.wire.api import API_REQUEST
from zdps.wire.batches import MAX_BATCH, pack_batch
from zdps.wire.codec import EntryList
from zdps.wire.consumers import ConsumerAck, ConsumerMsg, ConsumerState
from zdps.wire.delivery import message_header
from zdps.wire.limits import U64
from zdps.wire.messages import BY_KIND

CONSUMER_MSG, CONSUMER_ACK = ConsumerMsg.KIND, ConsumerAck.KIND
CONSUMER_STATE = ConsumerState.KIND

pytestmark = pytest.mark.timeout(60)

V = PROTOCOL_VERSION  # 2: batches
OK = pack_batch([b"ok"])
X = pack_batch([b"x"])


def blob(*payloads: bytes) -> bytes:
    return pack_batch(list(payloads))


# ---------------------------------------------------------------- envelopes and messages


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\xc1\xc1garbage", E_MALFORMED),
        (pack({"not": "a list"}), E_MALFORMED),
        (pack([]), E_MALFORMED),
        (pack([1, "sim", "b", 1, []]), "bad_version"),  # a node of protocol v1
        (pack([V + 1, "sim", "b", 1, []]), "bad_version"),
        (pack([V, "sim", "b", 1]), E_MALFORMED),
        (pack([V, "sim", 5, 1, []]), E_MALFORMED),
        (pack([V, "sim", "", 1, []]), E_MALFORMED),
        (pack([V, "sim", "b", "1", []]), E_MALFORMED),
        (pack([V, "sim", "b", 1, {}]), E_MALFORMED),
        (pack([V, 7, "b", 1, []]), E_MALFORMED),
    ],
)
def test_malformed_cluster_frames_are_counted(frame: bytes, code: str) -> None:
    net = cluster("ab")
    before = len(net.sent)
    net.inject("a", frame)
    assert net.error_codes("a") == {code: 1}
    assert [c for _, c, _ in net.errors["a"]] == [code]
    assert len(net.sent) == before
    assert net.converged()


def valid_forward(topic: str, ack_id: int) -> list:
    return [FORWARD, [[topic, 1, OK, ack_id, 1, 1]]]


@pytest.mark.parametrize(
    "bad",
    [
        [FANOUT, "not a list"],
        [FANOUT, [["t", 1, 1]]],
        [FORWARD, [["t", 1, "text batch", 0, 1, 1]]],
        [FORWARD, [[5, 1, X, 0, 1, 1]]],
        [FORWARD, [["t", b"x", 0, 1]]],  # a v1 entry: [topic, payload, ack_id, hops]
        [FORWARD, 5],
        [ACK, [5]],
        [NACK, [[1, "x"]]],
        [CLOSED, [["t", 1]]],
        [PING, 5],
        [PING, {}, "extra"],
        pytest.param(["nope", []], id="unknown-kind"),
        [],
        [["unhashable"], 1],
    ],
)
def test_malformed_messages_from_a_peer_are_counted_and_the_rest_is_processed(bad: list) -> None:
    net = cluster("ab")
    topic = topic_owned_by("a", "ab")
    net.subscribe("a", exact_group(topic))
    net.run_until_quiet()
    net.inject("a", net.envelope("b", [bad, valid_forward(topic, 77)]))
    net.run_until_quiet()
    code = "unknown_kind" if bad[:1] == ["nope"] else E_MALFORMED
    assert net.error_codes("a") == {code: 1}
    assert [d.payload for d in net.received("a", topic)] == [b"ok"]
    assert [e for s, e in net.entries(ACK, src="a")] == [[77, 1, 1, 1, 1]]
    assert net.converged()


def test_messages_from_an_unknown_sender_are_ignored() -> None:
    net = cluster("ab")
    topic = topic_owned_by("a", "ab")
    net.subscribe("a", exact_group(topic))
    net.inject("a", net.envelope("z", [valid_forward(topic, 5)]))
    net.inject("a", net.envelope("b", [valid_forward(topic, 6)], incarnation=1))
    net.run_until_quiet()
    assert net.received("a") == []
    assert net.core("a").counters["ignored_unknown_peer"] == 2
    assert net.core("a").errors == {}


# ---------------------------------------------------------------- batch entries


def settled() -> tuple[SimNet, str]:
    """Nodes a and b; ``a`` owns the topic and has a subscriber of it."""
    net = mesh("ab", CoreConfig(replicas=0))
    topic = topic_owned_by("a", "ab")
    net.subscribe("a", exact_group(topic))
    net.run_until_quiet()
    return net, topic


def nacked_ids(net: SimNet) -> list[int]:
    return [entry[0] for _, entry in net.entries(NACK, src="a")]


def named(entry: list, topic: str) -> list:
    return [topic if field == "T" else field for field in entry]


@pytest.mark.parametrize(
    ("kind", "bad", "good"),
    [
        # batch not bytes; ack_id 42 at index 3, after n 3; hops 1 and level 2 after it
        (FORWARD, ["T", 3, "text", 42, 1, 2], ["T", 1, OK, 43, 1, 2]),
        (FORWARD, ["T", 1, X, 42, 99, 1], ["T", 1, OK, 43, 1, 1]),  # too many hops
        (FORWARD, ["T", 0, X, 42, 1, 1], ["T", 1, OK, 43, 1, 1]),  # an empty batch
        (FORWARD, ["T", MAX_BATCH + 1, X, 42, 1, 1], ["T", 1, OK, 43, 1, 1]),  # too long
        (FORWARD, ["T", 1, X, 42, 1], ["T", 1, OK, 43, 1, 1]),  # no level: it is required
        (FORWARD, ["T", 2, X, 42, 1, 3], ["T", 1, OK, 43, 1, 1]),  # no such level
        (CLOSE, [5, 42, 1], ["T", 43, 1]),  # topic not text
        (CONFIGURE, ["T", -1, 60.0, 42, 1], ["T", 5, 60.0, 43, 1]),  # no such retention
    ],
)
def test_a_bad_entry_is_refused_under_the_ack_id_it_names(kind: str, bad: list, good: list) -> None:
    net, topic = settled()
    net.inject("a", net.envelope("b", [[kind, [named(bad, topic), named(good, topic)]]]))
    net.run_until_quiet()
    assert net.error_codes("a") == {E_MALFORMED: 1}
    assert nacked_ids(net) == [42]  # never 1, 2 or 3: the n, hops or level of a fwd entry
    assert [e[0] for _, e in net.entries(ACK, src="a")] == [43]


@pytest.mark.parametrize(
    "bad",
    [
        ["T", 1, X, "42", 1, 1],  # the ack id itself is unreadable
        ["T", 1, X, -42, 1, 1],
        ["T", 1, X, 0, 99, 1],  # 0: no ack wanted
        ["T", 1, X],
    ],
)
def test_a_bad_forward_entry_without_a_readable_ack_id_is_not_refused(bad: list) -> None:
    net, topic = settled()
    good = [topic, 1, OK, 43, 1, 1]
    net.inject("a", net.envelope("b", [[FORWARD, [named(bad, topic), good]]]))
    net.run_until_quiet()
    assert net.error_codes("a") == {E_MALFORMED: 1}
    assert nacked_ids(net) == []  # neither its n nor its hops taken for an ack id
    assert [e[0] for _, e in net.entries(ACK, src="a")] == [43]
    assert [d.payload for d in net.received("a", topic)] == [b"ok"]


@pytest.mark.parametrize(
    ("kind", "bad", "good"),
    [
        (FANOUT, ["T", 1, 7, 1, "text"], ["T", 2, 7, 1, OK]),
        (FANOUT, ["T", -1, 7, 1, X], ["T", 2, 7, 1, OK]),
        (FANOUT, ["T", 1, 7, 0, X], ["T", 2, 7, 1, OK]),  # an empty batch
        (FANOUT, ["T", 1, 7, MAX_BATCH + 1, X], ["T", 2, 7, 1, OK]),
        (FANOUT, ["T", 1, 7, X], ["T", 2, 7, 1, OK]),  # a v1 entry: no n
        (CLOSED, ["T", 1, 7, "yes"], ["T", 2, 7]),
        (STORE, ["T", 1, 7, 1, X, 1], ["T", 2, 7, 1, OK, True]),
        (STORE, ["T", 1, 7, 0, X, True], ["T", 2, 7, 1, OK, True]),
        (STORE, ["T", 1, 7, X, True], ["T", 2, 7, 1, OK, True]),  # a v1 entry: no n
        (STORED, ["T", 7], ["T", 7, 2]),
        (HANDOFF, ["T", [1], []], ["T", None, [[7, 2, 1, OK, 0.0]]]),
        (HANDOFF, ["T", None, [[7, 1, 0, X, 0.0]]], ["T", None, [[7, 2, 1, OK, 0.0]]]),
        (HANDOFF, ["T", None, [[7, 1, X, 0.0]]], ["T", None, [[7, 2, 1, OK, 0.0]]]),  # v1
        (ACK, [1, 1, 1, 1, 0], [2, 2, 1, 1, 1]),
        (ACK, [1, 1, 1, 1, MAX_BATCH + 1], [2, 2, 1, 1, 1]),  # more than a batch holds
        (NACK, [1, "malformed"], [2, "malformed", "why"]),
        (QUEUED, ["T", b"k", 1, 7, 1, "text"], ["T", b"k", 2, 7, 1, OK]),
        (QUEUED, ["T", "k", 1, 7, 1, X], ["T", b"k", 2, 7, 1, OK]),  # a key that is text
        (QUEUED, ["T", b"k", 1, 7, 0, X], ["T", b"k", 2, 7, 1, OK]),  # an empty batch
        (CONSUMER_MSG, ["T", "w", 7, 0, 1, b"x"], ["T", "w", 7, 1, 1, b"x"]),  # seq 0
        (CONSUMER_MSG, ["T", "w", 7, 1, 1001, b"x"], ["T", "w", 7, 1, 1, b"x"]),
        (CONSUMER_ACK, ["T", "w", 7, 1, 3], ["T", "w", 7, 1, 0]),  # no such verdict
        (CONSUMER_STATE, ["T", "w", None, [7], []], ["T", "w", None, [7, 1], []]),
        (CONSUMER_STATE, ["T", "w", {"topic": "T"}, [7, 1], []], ["T", "w", None, [7, 1], []]),
    ],
)
def test_a_bad_entry_of_any_other_batch_is_skipped_alone(kind: str, bad: list, good: list) -> None:
    net, topic = settled()
    net.inject("a", net.envelope("b", [[kind, [named(bad, topic), named(good, topic)]]]))
    net.run_until_quiet()
    assert net.error_codes("a") == {E_MALFORMED: 1}
    assert nacked_ids(net) == []  # nobody to refuse
    if kind in (FANOUT, STORE):  # the good entry next to the bad one took effect
        assert [d.payload for d in net.received("a", topic)] == [b"ok"]
    if kind == CLOSED:
        assert [d.header.get("type") for d in net.received("a", topic)] == ["closed"]
    if kind == HANDOFF:
        assert net.core("a").history.fetch(topic, 0, 0, 10) == [(7, 2, b"ok")]


def test_every_batch_kind_is_covered_by_the_bad_entry_tests() -> None:
    refused = {FORWARD, CLOSE, CONFIGURE}
    skipped = {FANOUT, CLOSED, STORE, STORED, HANDOFF, ACK, NACK, QUEUED}
    skipped |= {CONSUMER_MSG, CONSUMER_ACK, CONSUMER_STATE}
    batches = {kind for kind, cls in BY_KIND.items() if issubclass(cls, EntryList)}
    assert refused | skipped == batches


def test_a_bad_forward_entry_is_refused_alone() -> None:
    # PROTOCOL.md 3.2: entries are checked one by one; a bad one is counted and refused
    # (nack malformed) when it carries an ack id, and every good entry is processed.
    net = cluster("ab")
    topic = topic_owned_by("a", "ab")
    net.subscribe("a", exact_group(topic))
    batch = [
        [topic, 1, blob(b"1"), 11, 1, 1],
        [topic, 2, "not bytes", 12, 1, 1],
        [topic, 2, blob(b"3", b"4"), 13, 1, 1],
    ]
    net.inject(
        "a", net.envelope("b", [[FORWARD, batch], [FORWARD, [[topic, 1, blob(b"5"), 14, 1, 1]]]])
    )
    net.run_until_quiet()
    assert net.error_codes("a") == {E_MALFORMED: 1}
    assert [d.payload for d in net.received("a", topic)] == [b"1", b"3", b"4", b"5"]
    # One ack entry per batch: [ack_id, first seq, nodes, subscribers, n].
    assert [e for _, e in net.entries(ACK, src="a")] == [
        [11, 1, 1, 1, 1],
        [13, 2, 1, 1, 2],
        [14, 4, 1, 1, 1],
    ]
    assert [e[:2] for _, e in net.entries(NACK, src="a")] == [[12, E_MALFORMED]]


def consumed_by(net: SimNet, src: str, dst: str, since: int) -> int:
    """The messages ``src`` confirmed to ``dst`` in envelopes sent from ``since`` on."""
    return sum(
        count for sent, count in net.entries(CONSUMED, src=src, dst=dst) if sent in net.sent[since:]
    )


@pytest.mark.parametrize(
    ("kind", "bad", "count"),
    [
        (FORWARD, ["T", 5, "text", 42, 1, 1], 5),  # n is readable: its sender counted 5
        (FORWARD, ["T", 5, X, 42, 99, 1], 5),
        (FORWARD, ["T", 0, X, 42, 1, 1], 1),  # n is not a count: 1
        (FORWARD, ["T", MAX_BATCH + 1, X, 42, 1, 1], 1),
        (FORWARD, ["T", "5", X, 42, 1, 1], 1),
        (FANOUT, ["T", -1, 7, 4, X], 4),
        (FANOUT, ["T", 1, 7, 4, "text"], 4),
        (STORE, ["T", 1, 7, 3, X, "yes"], 3),
        (CLOSE, [5, 42, 1], 1),  # one message per entry of a kind without batches
        (CLOSED, ["T", 1, 7, "yes"], 1),
        (CONFIGURE, ["T", -1, 60.0, 42, 1], 1),
    ],
)
def test_a_bad_data_entry_counts_the_messages_it_names_as_processed(
    kind: str, bad: list, count: int
) -> None:
    net, topic = settled()
    before = len(net.sent)
    good = [topic, 2, blob(b"g1", b"g2"), 43, 1, 1]
    net.inject("a", net.envelope("b", [[kind, [named(bad, topic)]], [FORWARD, [good]]]))
    assert net.core("a").flow.owed == {"b": count + 2}  # confirmed at the next tick
    net.advance(1.0)
    assert consumed_by(net, "a", "b", before) == count + 2
    assert net.error_codes("a") == {E_MALFORMED: 1}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=6),
    bad_at=st.integers(0, 6),
    bad_n=st.integers(1, MAX_BATCH),
)
def test_a_bad_forward_batch_costs_only_itself(sizes: list[int], bad_at: int, bad_n: int) -> None:
    """Whatever the batches around it: each good one is sequenced as one range, acked as
    one entry; the bad one is refused under its own ack id and counted as its n."""
    net, topic = settled()
    before = len(net.sent)
    entries = [
        [topic, n, blob(*[b"%d.%d" % (i, j) for j in range(n)]), 100 + i, 1, 1]
        for i, n in enumerate(sizes)
    ]
    bad_at = min(bad_at, len(entries))
    entries.insert(bad_at, [topic, bad_n, "not a batch", 99, 1, 1])
    net.inject("a", net.envelope("b", [[FORWARD, entries]]))
    net.run_until_quiet()
    assert nacked_ids(net) == [99]
    firsts = [1 + sum(sizes[:i]) for i in range(len(sizes))]
    assert [e for _, e in net.entries(ACK, src="a")] == [
        [100 + i, firsts[i], 1, 1, n] for i, n in enumerate(sizes)
    ]
    assert [d.payload for d in net.received("a", topic)] == [
        b"%d.%d" % (i, j) for i, n in enumerate(sizes) for j in range(n)
    ]
    assert net.stamps("a", topic) == [
        (net.stamps("a", topic)[0][0], seq) for seq in range(1, sum(sizes) + 1)
    ]
    net.advance(1.0)
    assert consumed_by(net, "a", "b", before) == sum(sizes) + bad_n


def test_a_store_entry_whose_blob_does_not_unpack_costs_only_itself() -> None:
    net, topic = settled()
    net.inject("a", net.envelope("b", [[STORE, [[topic, 5, 7, 1, OK, False]]]]))
    before = len(net.sent)
    bad = [topic, 1, 7, 2, b"not a batch", False]  # older than seq 5: merged
    good = [topic, 6, 7, 1, blob(b"six"), True]
    net.inject("a", net.envelope("b", [[STORE, [bad, good]]]))
    assert net.error_codes("a") == {E_MALFORMED: 1}
    assert [d.payload for d in net.received("a", topic)] == [b"six"]
    assert [p for _, _, p in net.core("a").history.fetch(topic, 0, 0, 10)] == [b"ok", b"six"]
    net.advance(1.0)
    assert consumed_by(net, "a", "b", before) == 1 + 2 + 1  # all three entries, by their n


# ---------------------------------------------------------------- robustness
# Each of these crashed the node (an exception out of the core, or a delivery the
# daemon's XPUB send dies on) when first written.


@pytest.mark.parametrize("bad", [5, None, {}])
def test_non_list_message_in_an_envelope_is_counted_not_raised(bad) -> None:
    net = cluster("ab")
    net.inject("a", pack([V, "sim", "stranger", 1, [bad]]))
    assert net.error_codes("a") == {E_MALFORMED: 1}


@pytest.mark.parametrize(
    "bad",
    [
        [FANOUT, [[5, 1, 1, 1, X]]],
        [FANOUT, [["t", 1, 1, 1, "text"]]],
        [FANOUT, [["t", 1, 1, "1", X]]],
        [STORE, [["t", 1, 1, 1, "text", True]]],
        [CLOSED, [[5, 1, 1]]],
    ],
)
def test_fanout_entries_with_wrong_types_are_refused(bad: list) -> None:
    net = cluster("ab")
    net.inject("a", net.envelope("b", [bad]))
    assert net.error_codes("a") == {E_MALFORMED: 1}
    assert net.received("a") == []


@pytest.mark.parametrize(
    "message",
    [
        [FANOUT, [["t", -1, 1, 1, X]]],  # a negative seq cannot be a header field
        [FANOUT, [["t", 1, -1, 1, X]]],  # nor a negative epoch
        [FANOUT, [["t", 1, 1, 10**12, X]]],  # a batch that would keep the node busy
        [STORE, [["t", 1, 1, 10**12, X, False]]],
        [CLOSED, [["t", 1, -5]]],
        [ACK, [[1, 1, 1, 1, 10**12]]],  # an ack of more than a batch
        [ACK, [[1, 1, 1, 1, 0]]],
    ],
)
def test_hostile_entries_from_an_admitted_peer_are_refused(message: list) -> None:
    net = cluster("ab")
    net.subscribe("a", exact_group("t"))
    net.run_until_quiet()
    net.inject("a", net.envelope("b", [message]))
    net.run_until_quiet()
    assert net.error_codes("a") == {E_MALFORMED: 1}
    assert net.received("a") == []


OVER = blob(b"x", b"y")  # two messages from seq 2**64 - 1: the second's seq does not fit


@pytest.mark.parametrize(
    "message",
    [
        pytest.param([FANOUT, [["t", U64 - 1, 1, 2, OVER]]], id="fanout"),
        pytest.param([STORE, [["t", U64 - 1, 1, 2, OVER, True]]], id="store"),
    ],
)
def test_a_batch_whose_seqs_run_past_the_u64_range_is_refused(message: list) -> None:
    net, _ = settled()
    net.subscribe("a", exact_group("t"))
    net.run_until_quiet()
    net.inject("a", net.envelope("b", [message]))
    net.run_until_quiet()
    for delivery in net.received("a"):  # each header as the daemon's XPUB builds it
        message_header(delivery.header["seq"], delivery.header["epoch"])
    assert net.error_codes("a") == {E_MALFORMED: 1}
    assert net.received("a") == []


KINDS = [FANOUT, FORWARD, ACK, NACK, CLOSED, PING, PEERS, HELLO, "close", "sync", "update"]


def junk(rng: random.Random, depth: int = 0):
    """A random msgpack-able value: what a confused or hostile peer might send."""
    roll = rng.randrange(8 if depth < 2 else 5)
    if roll == 0:
        return rng.choice([0, 1, 3, -1, 2**40])
    if roll == 1:
        return rng.choice(["", "t", "x\x00y", "inproc://b"])
    if roll == 2:
        return rng.choice([b"", b"p", b"t\x00"])
    if roll == 3:
        return rng.choice([None, True, 1.5])
    if roll == 4:
        return rng.choice(KINDS)
    if roll == 5:
        return {junk(rng, 2): junk(rng, depth + 1) for _ in range(rng.randrange(3))}
    return [junk(rng, depth + 1) for _ in range(rng.randrange(6))]


def junk_message(rng: random.Random):
    shape = rng.randrange(3)
    if shape == 0:
        return junk(rng)
    if shape == 1:
        return [rng.choice(KINDS), junk(rng, 1)]
    entries = [[junk(rng, 2) for _ in range(rng.randrange(6))] for _ in range(rng.randrange(4))]
    return [rng.choice(KINDS), entries]


def test_no_message_from_a_peer_can_crash_the_node() -> None:
    """Seeded (so deterministic) junk from an admitted peer is counted, never raised."""
    rng = random.Random(20261121)
    crashes = []
    for _ in range(300):
        messages = [junk_message(rng) for _ in range(rng.randrange(1, 4))]
        net = cluster("ab")
        try:
            net.inject("a", net.envelope("b", messages))
            net.run_until_quiet()
        except Exception as exc:
            crashes.append((messages, exc))
            continue
        assert net.converged()
        assert net.core("a").errors.keys() <= {E_MALFORMED, E_INVALID_TOPIC, "unknown_kind"}
    assert crashes == []


# ---------------------------------------------------------------- bugs propagate


def test_a_bug_in_a_cluster_message_handler_propagates(monkeypatch: pytest.MonkeyPatch) -> None:
    net, topic = settled()
    core = net.core("a")

    def broken(*_args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setitem(core._handlers, next(t for t in core._handlers if t.KIND == FANOUT), broken)
    with pytest.raises(RuntimeError, match="a bug"):
        net.inject("a", net.envelope("b", [[FANOUT, [[topic, 1, 7, 1, X]]]]))
    assert core.errors == {}  # not taken for bad input


def test_a_bug_while_routing_a_clients_batch_propagates(monkeypatch: pytest.MonkeyPatch) -> None:
    net, topic = settled()
    core = net.core("a")

    def broken(*_args: object) -> None:
        raise ValueError("a bug")

    monkeypatch.setattr(type(core.owner), "sequence", broken)  # slots: on the class
    with pytest.raises(ValueError, match="a bug"):
        net.publish("a", topic, b"x")
    assert core.errors == {}  # not taken for bad input
    with pytest.raises(ValueError, match="a bug"):  # nor from a peer's batch
        net.inject("a", net.envelope("b", [valid_forward(topic, 5)]))
    assert core.errors == {}


def test_a_bug_in_a_request_handler_propagates(monkeypatch: pytest.MonkeyPatch) -> None:
    net, _ = settled()
    core = net.core("a")

    def broken(*_args: object) -> None:
        raise KeyError("a bug")

    ops = core.clients._ops
    monkeypatch.setitem(ops, next(op for op in ops if op.OP == "status"), broken)
    with pytest.raises(KeyError, match="a bug"):
        net.client_frame("a", encode_api(API_REQUEST, 5, "status", {}))
    assert core.errors == {}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), new=ANY)
def test_damaged_messages_from_an_alive_peer_never_raise(data: st.DataObject, new: object) -> None:
    """Whatever an alive peer sends is bad input at worst: counted, never a crash."""
    net, _ = settled()
    message = data.draw(st.sampled_from(EXAMPLES), label="kind")
    raw = over_the_wire(message.encode())
    path = data.draw(st.sampled_from(paths(raw)), label="path")
    net.inject("a", net.envelope("b", [replaced(raw, path, new)]))
    net.run_until_quiet()
    net.advance(1.0)
