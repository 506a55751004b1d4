"""Peers of another protocol version or kind set (zdps/core/compatibility.py, §11):
never admitted, logged, and told why, at most once per 30 s per endpoint."""

from __future__ import annotations

import pytest

from tests.core.helpers import cluster
from tests.core.node_net import SimNet
from zdps.core.compatibility import REFUSE_EVERY
from zdps.wire import HELLO
from zdps.wire.codec import PROTOCOL_VERSION, pack
from zdps.wire.gossip import Hello
from zdps.wire.messages import SPOKEN

pytestmark = pytest.mark.timeout(30)

STRANGER = "tcp://127.0.0.1:9"  # nothing listens: what it is sent is only recorded


def hello(**fields) -> Hello:
    base = {"protocol": PROTOCOL_VERSION, "kinds": SPOKEN}
    return Hello(STRANGER, {}, "inproc://a", True, **{**base, **fields})


def refusals(net: SimNet) -> list[str]:
    return [body["refused"] for sent, body in net.entries(HELLO, src="a") if "refused" in body]


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"protocol": PROTOCOL_VERSION + 1}, f"protocol {PROTOCOL_VERSION + 1}, this node 2"),
        ({"kinds": tuple(k for k in SPOKEN if k != "fwd")}, "does not speak fwd"),
        ({"kinds": ()}, "does not speak"),
    ],
)
def test_an_incompatible_hello_is_refused_told_and_not_admitted(fields: dict, why: str) -> None:
    net = cluster("ab")
    net.inject("a", net.envelope("x", [hello(**fields)]))
    assert "x" not in net.core("a").membership.peers
    assert net.log_lines("a", "incompatible_peer") and why in net.logs["a"][-1][1]
    (sent,) = [s for s, body in net.entries(HELLO, src="a") if "refused" in body]
    assert sent.endpoint == STRANGER and why in refusals(net)[0]
    net.inject("a", net.envelope("x", [hello(**fields)]))  # it retries at once: not told twice
    assert len(refusals(net)) == 1
    net.advance(REFUSE_EVERY)
    net.inject("a", net.envelope("x", [hello(**fields)]))
    assert len(refusals(net)) == 2
    assert net.views() == {"a": {"b"}, "b": {"a"}}


def test_a_hello_of_a_node_from_before_the_announcement_is_admitted() -> None:
    net = cluster("ab")
    net.add("c")
    old = Hello(net.endpoint("c"), {}, net.endpoint("a"), True)  # no protocol, no kinds
    net.inject("a", net.envelope("c", [old]))
    assert "c" in net.core("a").membership.peers and not refusals(net)


def test_an_envelope_of_another_version_is_counted_and_its_hello_refused() -> None:
    net = cluster("ab")
    body = hello(protocol=PROTOCOL_VERSION + 1).body()
    frame = pack([PROTOCOL_VERSION + 1, "default", "x", 5, [[HELLO, body], ["newkind", {}]]])
    net.inject("a", frame)
    assert net.error_codes("a") == {"bad_version": 1}
    assert refusals(net) == [f"it speaks protocol {PROTOCOL_VERSION + 1}, this node 2"]
    net.inject("a", pack([PROTOCOL_VERSION + 1, "default", "x", 5, [["ping", {}]]]))
    assert net.error_codes("a") == {"bad_version": 2} and len(refusals(net)) == 1


@pytest.mark.parametrize("sender", ["", None, 7])
def test_another_versions_envelope_without_a_sender_is_only_counted(sender: object) -> None:
    """Found by the live fuzzer (seed 11): an empty sender crashed the refusal's log line."""
    net = cluster("ab")
    body = hello().body()
    net.inject("a", pack(["2", "default", sender, 5, [[HELLO, body]]]))
    assert net.error_codes("a") == {"bad_version": 1} and not refusals(net)


def test_a_peer_that_refuses_this_node_is_dropped_and_logged() -> None:
    net = cluster("ab")
    refusal = Hello(net.endpoint("b"), {}, net.endpoint("a"), False, refused="it speaks 3")
    net.inject("a", net.envelope("b", [refusal]))
    assert "b" not in net.core("a").membership.alive()
    lines = [line for _, line in net.logs["a"]]
    assert any("refused_by" in line and "it speaks 3" in line for line in lines)
    assert any("peer_down" in line and "reason=refused" in line for line in lines)


def test_every_hello_says_its_protocol_and_kinds() -> None:
    net = cluster("ab")
    bodies = [body for _, body in net.entries(HELLO)]
    assert bodies and all(
        b["protocol"] == PROTOCOL_VERSION and b["kinds"] == list(SPOKEN) for b in bodies
    )
