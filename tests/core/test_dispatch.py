"""NodeCore's dispatch (zdps/core/node.py): bad input is ``ProtocolError`` and nothing else.

* An envelope of another scope, or one that cannot be read, is counted and dropped; a
  message from a sender that is not an alive peer is ignored (``ignored_unknown_peer``).
* Bad input is counted by code, nacked where there is a ref, and never costs the
  valid entries around it: a bad message is skipped and the next one processed.
* A bad entry of any batch kind is skipped alone and counted; the entries around it
  take effect. One that names an ``ack_id`` in its own field (fwd, close, configure)
  is refused under that id, whatever its length (a 5-element fwd entry's second to
  last field is ``hops``, not its ``ack_id``).
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
    E_INVALID_TOPIC,
    E_MALFORMED,
    FANOUT,
    FORWARD,
    HANDOFF,
    HELLO,
    NACK,
    PEERS,
    PING,
    STORE,
    STORED,
    encode_api,
    pack,
)
from zdps.wire.api import API_REQUEST

pytestmark = pytest.mark.timeout(60)


# ---------------------------------------------------------------- envelopes and messages


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\xc1\xc1garbage", E_MALFORMED),
        (pack({"not": "a list"}), E_MALFORMED),
        (pack([]), E_MALFORMED),
        (pack([2, "sim", "b", 1, []]), "bad_version"),
        (pack([1, "sim", "b", 1]), E_MALFORMED),
        (pack([1, "sim", 5, 1, []]), E_MALFORMED),
        (pack([1, "sim", "", 1, []]), E_MALFORMED),
        (pack([1, "sim", "b", "1", []]), E_MALFORMED),
        (pack([1, "sim", "b", 1, {}]), E_MALFORMED),
        (pack([1, 7, "b", 1, []]), E_MALFORMED),
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
    return [FORWARD, [[topic, b"ok", ack_id, 1]]]


@pytest.mark.parametrize(
    "bad",
    [
        [FANOUT, "not a list"],
        [FANOUT, [["t", 1, 1]]],
        [FORWARD, [["t", "text payload", 0, 1]]],
        [FORWARD, [[5, b"x", 0, 1]]],
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


@pytest.mark.parametrize(
    ("kind", "bad", "good"),
    [
        # payload not bytes; ack_id 42 at index 2, hops 1 and level 2 after it
        (FORWARD, ["T", "text", 42, 1, 2], ["T", b"ok", 43, 1, 2]),
        (FORWARD, ["T", b"x", 42, 99], ["T", b"ok", 43, 1]),  # too many hops
        (CLOSE, [5, 42, 1], ["T", 43, 1]),  # topic not text
        (CONFIGURE, ["T", -1, 60.0, 42, 1], ["T", 5, 60.0, 43, 1]),  # no such retention
    ],
)
def test_a_bad_entry_is_refused_under_the_ack_id_it_names(kind: str, bad: list, good: list) -> None:
    net, topic = settled()
    bad = [topic if field == "T" else field for field in bad]
    good = [topic if field == "T" else field for field in good]
    net.inject("a", net.envelope("b", [[kind, [bad, good]]]))
    net.run_until_quiet()
    assert net.error_codes("a") == {E_MALFORMED: 1}
    assert nacked_ids(net) == [42]  # never 1, the hops of the 5-element fwd entry
    acked = [e[0] + i for _, e in net.entries(ACK, src="a") for i in range(e[4])]
    assert acked == [43]


@pytest.mark.parametrize(
    ("kind", "bad", "good"),
    [
        (FANOUT, ["T", 1, 7, "text"], ["T", 2, 7, b"ok"]),
        (FANOUT, ["T", -1, 7, b"x"], ["T", 2, 7, b"ok"]),
        (CLOSED, ["T", 1, 7, "yes"], ["T", 2, 7]),
        (STORE, ["T", 1, 7, b"x", 1], ["T", 2, 7, b"ok", True]),
        (STORED, ["T", 7], ["T", 7, 2]),
        (HANDOFF, ["T", [1], []], ["T", None, [[7, 2, b"ok", 0.0]]]),
        (ACK, [1, 1, 1, 1, 0], [2, 2, 1, 1, 1]),
        (NACK, [1, "malformed"], [2, "malformed", "why"]),
    ],
)
def test_a_bad_entry_of_any_other_batch_is_skipped_alone(kind: str, bad: list, good: list) -> None:
    net, topic = settled()
    bad = [topic if field == "T" else field for field in bad]
    good = [topic if field == "T" else field for field in good]
    net.inject("a", net.envelope("b", [[kind, [bad, good]]]))
    net.run_until_quiet()
    assert net.error_codes("a") == {E_MALFORMED: 1}
    assert nacked_ids(net) == []  # nobody to refuse
    if kind in (FANOUT, STORE):  # the good entry next to the bad one took effect
        assert [d.payload for d in net.received("a", topic)] == [b"ok"]
    if kind == CLOSED:
        assert [d.header.get("type") for d in net.received("a", topic)] == ["closed"]
    if kind == HANDOFF:
        assert [e.payload for e in net.core("a").history.fetch(topic, 0, 0, 10)] == [b"ok"]


def test_a_bad_forward_entry_is_refused_alone() -> None:
    # PROTOCOL.md 3.2: entries are checked one by one; a bad one is counted and refused
    # (nack malformed) when it carries an ack id, and every good entry is processed.
    net = cluster("ab")
    topic = topic_owned_by("a", "ab")
    net.subscribe("a", exact_group(topic))
    batch = [[topic, b"1", 11, 1], [topic, "not bytes", 12, 1], [topic, b"3", 13, 1]]
    net.inject("a", net.envelope("b", [[FORWARD, batch], [FORWARD, [[topic, b"4", 14, 1]]]]))
    net.run_until_quiet()
    assert net.error_codes("a") == {E_MALFORMED: 1}
    assert [d.payload for d in net.received("a", topic)] == [b"1", b"3", b"4"]
    acked = [e[0] + i for _, e in net.entries(ACK, src="a") for i in range(e[4])]
    assert acked == [11, 13, 14]
    assert [e[:2] for _, e in net.entries(NACK, src="a")] == [[12, E_MALFORMED]]


# ---------------------------------------------------------------- robustness
# Each of these crashed the node (an exception out of the core, or a delivery the
# daemon's XPUB send dies on) when first written.


@pytest.mark.parametrize("bad", [5, None, {}])
def test_non_list_message_in_an_envelope_is_counted_not_raised(bad) -> None:
    net = cluster("ab")
    net.inject("a", pack([1, "sim", "stranger", 1, [bad]]))
    assert net.error_codes("a") == {E_MALFORMED: 1}


@pytest.mark.parametrize(
    "bad", [[FANOUT, [[5, 1, 1, b"x"]]], [FANOUT, [["t", 1, 1, "text"]]], [CLOSED, [[5, 1, 1]]]]
)
def test_fanout_entries_with_wrong_types_are_refused(bad: list) -> None:
    net = cluster("ab")
    net.inject("a", net.envelope("b", [bad]))
    assert net.error_codes("a") == {E_MALFORMED: 1}
    assert net.received("a") == []


@pytest.mark.parametrize(
    "message",
    [
        [FANOUT, [["t", -1, 1, b"x"]]],  # a negative seq cannot be a header field
        [FANOUT, [["t", 1, -1, b"x"]]],  # nor a negative epoch
        [CLOSED, [["t", 1, -5]]],
        [ACK, [[1, 1, 1, 1, 10**12]]],  # an ack run that would keep the node busy
        [ACK, [[1, 1, 1, 1, 0]]],
    ],
)
def test_hostile_entries_from_an_admitted_peer_are_refused(message: list) -> None:
    net = cluster("ab")
    net.inject("a", net.envelope("b", [message]))
    net.run_until_quiet()
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
        net.inject("a", net.envelope("b", [[FANOUT, [[topic, 1, 7, b"x"]]]]))
    assert core.errors == {}  # not taken for bad input


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
