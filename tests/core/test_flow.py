"""Flow control (zdps/core/flow.py): unconfirmed data to a peer is bounded, and nothing
accepted is lost.

The owner counts fan-out copies until the receiving node confirms it processed them
(``consumed``); past the window it is saturated: forwards wait, unsequenced and
unacknowledged, until confirmations return; then everything flows in order.

* Saturated means more than ``window`` entries in flight to some peer; a ``consumed``
  subtracts (never below 0), a peer that goes down no longer counts.
* While saturated, and while older forwards still wait, a ``fwd`` is set aside whole.
* What a node processed from a peer is confirmed once it exceeds 1/8 of the window,
  else at the next tick (``all_``).

Sans-IO tests drive ``FlowControl`` directly; the others run the simulated cluster
(tests/core/node_net.py).
"""

from __future__ import annotations

import pytest

from tests.core.node_net import SimNet
from zdps.core.flow import FlowControl
from zdps.core.outbox import Outbox
from zdps.core.ring import HashRing
from zdps.core.tunables import CoreConfig
from zdps.topics import exact_group
from zdps.wire import CONSUMED
from zdps.wire.data import Consumed, Forward

pytestmark = pytest.mark.timeout(60)

WINDOW = 10


def endpoint(node: str) -> str | None:
    return None if node == "gone" else f"inproc://{node}"


def forward(payload: bytes) -> Forward:
    return Forward([("t", payload, 0, 1)])


# ---------------------------------------------------------------- FlowControl


def test_saturated_only_above_the_window_and_consumed_never_below_zero() -> None:
    flow = FlowControl(WINDOW)
    flow.sent("b", WINDOW)
    flow.sent("c", 3)
    assert not flow.saturated  # the window itself is allowed
    flow.sent("b")
    assert flow.saturated
    flow.on_consumed("c", Consumed(3))
    assert flow.saturated  # another peer's confirmation does not help
    flow.on_consumed("b", Consumed(1))
    assert not flow.saturated
    flow.on_consumed("b", Consumed(WINDOW * 5))
    assert flow.inflight == {"b": 0, "c": 0}


def test_forwards_are_deferred_while_saturated_and_while_older_ones_wait() -> None:
    flow = FlowControl(WINDOW)
    assert flow.defer("b", forward(b"0")) is False and not flow.deferred
    flow.sent("c", WINDOW + 1)
    assert flow.defer("b", forward(b"1")) is True
    flow.on_consumed("c", Consumed(WINDOW))
    assert not flow.saturated
    assert flow.defer("d", forward(b"2")) is True  # behind the one still waiting
    assert [(s, m.entries[0][1]) for s, m in flow.deferred] == [("b", b"1"), ("d", b"2")]


def test_confirmations_wait_for_an_eighth_of_the_window_unless_all_are_owed() -> None:
    flow, out = FlowControl(16), Outbox()  # 1/8 of the window: 2
    flow.processed("b", 2)
    flow.processed("c", 3)
    flow.processed("gone", 5)
    flow.confirm(out, endpoint, all_=False)
    assert out.peers == {endpoint("c"): [Consumed(3)]}
    assert flow.owed == {"b": 2}
    flow.processed("b", 1)
    flow.confirm(out, endpoint, all_=True)
    assert out.peers[endpoint("b")] == [Consumed(3)]
    assert flow.owed == {}


def test_a_peer_going_down_is_forgotten() -> None:
    flow = FlowControl(WINDOW)
    flow.sent("b", WINDOW + 1)
    flow.sent("c", 2)
    flow.processed("b", 4)
    flow.peer_down("b", Outbox())
    assert not flow.saturated
    assert (flow.inflight, flow.owed) == ({"c": 2}, {})


# ---------------------------------------------------------------- in the cluster


def three_nodes() -> tuple[SimNet, str]:
    net = SimNet(config=CoreConfig(flow_window=WINDOW))
    net.add("a")
    net.add("b", ["a"])
    net.add("c", ["a"])
    net.settle()
    ring = HashRing(["a", "b", "c"])
    topic = next(t for i in range(1000) if ring.owner(t := f"t{i}") == "b")
    net.subscribe("c", exact_group(topic))
    net.run_until_quiet()
    return net, topic


def run_except(net: SimNet, src: str, dst: str, max_events: int = 10_000) -> None:
    """Deliver everything in flight except frames from ``src`` to ``dst`` (held back)."""
    held = (src, net.endpoint(dst))
    for _ in range(max_events):
        links = [link for link in net.in_flight() if link != held]
        if not links:
            return
        net.deliver(links[0])
    raise RuntimeError("not quiet")


def test_owner_saturates_then_resumes_without_loss_or_reordering() -> None:
    net, topic = three_nodes()
    refs = [net.publish("a", topic, f"m{i}".encode()) for i in range(50)]
    run_except(net, "c", "b")  # c delivers but its confirmations do not reach b
    owner = net.core("b")
    assert owner.paused
    sequenced = owner.counters["owned_published"]
    assert WINDOW < sequenced <= WINDOW + 1, "the owner stops sequencing at the window"
    assert owner.counters["deferred"] == 50 - sequenced
    assert len(net.acks("a")) == sequenced, "deferred publishes are not acknowledged yet"
    # b does not confirm the forwards it holds, so the entry node saturates too and
    # stops taking client publishes: backpressure reaches the publishers.
    assert net.core("a").paused

    net.run_until_quiet()  # confirmations flow again
    assert not owner.paused and not net.core("a").paused
    assert sorted(net.acks("a")) == sorted(refs)
    assert [d.payload for d in net.received("c", topic)] == [f"m{i}".encode() for i in range(50)]
    assert net.stamps("c", topic) == [(net.stamps("c", topic)[0][0], s) for s in range(1, 51)]
    assert owner.status(net.clock)["paused"] is False
    # The operator sees each pause, with the peer that caused it, and the resume.
    assert net.log_lines("b", f"flow_paused peers=c window={WINDOW}")
    assert net.log_lines("a", f"flow_paused peers=b window={WINDOW}")
    for node in "ab":
        assert len(net.log_lines(node, "flow_paused")) == len(net.log_lines(node, "flow_resumed"))
        assert net.core(node).counters["flow_paused"] == len(net.log_lines(node, "flow_paused"))


def test_confirmations_are_one_message_per_peer_per_turn() -> None:
    net, topic = three_nodes()
    net.publish_batch("a", [[0, topic, b"x"]] * 25)
    net.run_until_quiet()
    confirmations = [count for _, count in net.entries(CONSUMED)]
    assert sum(confirmations) == 25 + 25  # b confirms a's forwards, c confirms b's fan-out
    assert len(confirmations) <= 4


def test_a_dead_peer_releases_the_saturation() -> None:
    net, topic = three_nodes()
    for i in range(30):
        net.publish("a", topic, f"m{i}".encode())
    run_except(net, "c", "b")
    assert net.core("b").paused
    net.crash("c")
    net.advance(5.0)  # c is declared dead: its unconfirmed copies no longer count
    assert not net.core("b").paused
    assert net.core("b").counters["owned_published"] == 30
    assert len(net.acks("a")) == 30
