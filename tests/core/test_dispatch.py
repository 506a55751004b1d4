"""NodeCore's dispatch: bad input is ``ProtocolError`` and nothing else.

* A bad entry of any batch kind is skipped alone and counted; the entries around it
  take effect. One that names an ``ack_id`` in its own field (fwd, close, configure)
  is refused under that id, whatever its length (a 5-element fwd entry's second to
  last field is ``hops``, not its ``ack_id``).
* Any other exception raised while handling input is a bug: it propagates out of the
  core (the daemon logs it and exits 1) instead of being counted as bad input.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.core.node_net import SimNet, mesh
from tests.core.test_router import topic_owned_by
from tests.wire.test_messages import ANY, EXAMPLES, over_the_wire, paths, replaced
from zdps.core.tunables import CoreConfig
from zdps.topics import exact_group
from zdps.wire import (
    ACK,
    CLOSE,
    CLOSED,
    CONFIGURE,
    E_MALFORMED,
    FANOUT,
    FORWARD,
    HANDOFF,
    NACK,
    STORE,
    STORED,
    encode_api,
)
from zdps.wire.api import API_REQUEST

pytestmark = pytest.mark.timeout(30)


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
