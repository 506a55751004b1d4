"""Flow control (zdps/core/flow.py): unconfirmed data to a peer is bounded, and nothing
accepted is lost.

The owner counts fan-out copies until the receiving node confirms it processed them
(``consumed``); past the window it is saturated: forwards wait, unsequenced and
unacknowledged, until confirmations return; then everything flows in order.

* Flow control counts messages, not entries: a batch entry (fwd, fanout, store) of
  ``n`` is ``n`` in flight and ``n`` consumed, and a bad one counts the ``n`` it names.
* Saturated means more than ``window`` messages in flight to some peer; a ``consumed``
  subtracts (never below 0), a peer that goes down no longer counts.
* While saturated, and while older forwards still wait, a ``fwd`` is set aside whole.
* What a node processed from a peer is confirmed once it exceeds 1/8 of the window,
  else at the next tick (``all_``).

Sans-IO tests drive ``FlowControl`` directly; the others run the simulated cluster
(tests/core/node_net.py).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.helpers import FAST
from tests.core.node_net import SimNet
from zdps.core.flow import FlowControl
from zdps.core.outbox import Outbox
from zdps.core.ring import HashRing
from zdps.core.tunables import CoreConfig
from zdps.topics import exact_group
from zdps.wire import CONSUMED, FANOUT, FORWARD, LEVEL_OWNER, STORE
from zdps.wire.api import publish_entry
from zdps.wire.batches import pack_batch
from zdps.wire.data import Consumed, Forward

pytestmark = pytest.mark.timeout(60)

WINDOW = 10


def endpoint(node: str) -> str | None:
    return None if node == "gone" else f"inproc://{node}"


def forward(payload: bytes, n: int = 1) -> Forward:
    return Forward([("t", n, pack_batch([payload] * n), 0, 1, LEVEL_OWNER)])


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
    assert [(s, m.entries[0][2]) for s, m in flow.deferred] == [
        ("b", pack_batch([b"1"])),
        ("d", pack_batch([b"2"])),
    ]


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
    # b does not confirm the forwards it sets aside, so the entry node saturates too
    # and holds its client's later publishes: backpressure reaches the publishers.
    entry = net.core("a")
    assert entry.paused and entry.clients.held
    set_aside = sum(message.messages() for _, message in owner.flow.deferred)
    assert set_aside + len(entry.clients.held) == 50 - sequenced  # one publish per frame
    assert len(net.acks("a")) == sequenced, "deferred publishes are not acknowledged yet"

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
    net.publish_batch("a", [publish_entry(0, topic, [b"x"] * 25, LEVEL_OWNER)])
    net.run_until_quiet()
    assert [e[1] for _, e in net.entries(FORWARD)] == [25]  # one entry ...
    assert [e[3] for kind in (FANOUT, STORE) for _, e in net.entries(kind)] == [25]
    confirmations = [count for _, count in net.entries(CONSUMED)]
    assert sum(confirmations) == 25 + 25  # ... confirmed as 25 messages by b and by c
    assert len(confirmations) <= 4


def test_a_wake_up_for_paced_acknowledgements_sends_no_confirmation() -> None:
    """A node woken before its timers are due (for a paced acknowledgement or copy) does
    not send what it owes its peers: a confirmation per pacing interval would be a frame
    to each peer per millisecond. The next timer tick, at most a heartbeat away, does."""
    net, _ = three_nodes()
    b = net.core("b")
    t = net.clock
    b.tick(t)
    b.take(t)
    b.flow.processed("a", 1)  # owed, below 1/8 of the window
    b.tick(t)
    assert not b.take(t).peers
    later = t + b.config.heartbeat_interval
    assert b.next_deadline() <= later
    b.tick(later)
    assert [m for m in b.take(later).peers[net.endpoint("a")] if isinstance(m, Consumed)]


def test_one_batch_over_the_window_saturates() -> None:
    """The window counts messages: one fwd entry of window + 1 saturates the entry node,
    its fan-out entry the owner."""
    net, topic = three_nodes()
    net.publish_batch("a", [publish_entry(0, topic, [b"x"] * (WINDOW + 1), LEVEL_OWNER)])
    assert net.core("a").flow.inflight == {"b": WINDOW + 1}
    assert net.core("a").paused
    assert net.core("a").counters["routed_to_owner"] == WINDOW + 1
    run_except(net, "c", "b")  # c's confirmations do not reach b
    assert net.core("b").flow.inflight["c"] == WINDOW + 1 and net.core("b").paused
    assert net.core("b").counters["fanout_sent"] == WINDOW + 1
    assert net.core("c").counters["fanout_received"] == WINDOW + 1
    net.run_until_quiet()
    net.advance(1.0)
    assert not net.core("a").paused and not net.core("b").paused
    assert [d.payload for d in net.received("c", topic)] == [b"x"] * (WINDOW + 1)


def test_deferred_forwards_are_counted_in_messages() -> None:
    net, topic = three_nodes()
    net.publish_batch("a", [publish_entry(0, topic, [b"x"] * (WINDOW + 1), LEVEL_OWNER)])
    run_except(net, "c", "b")  # b saturates on its copies to c
    assert net.core("b").paused
    assert not net.core("a").paused  # b confirmed a's forwards: a takes more
    net.publish_batch("a", [publish_entry(0, topic, [b"y"] * 7, LEVEL_OWNER)])
    run_except(net, "c", "b")
    assert net.core("b").counters["deferred"] == 7  # one fwd entry of 7 set aside
    assert net.core("b").counters["owned_published"] == WINDOW + 1
    net.run_until_quiet()
    assert net.core("b").counters["owned_published"] == WINDOW + 8
    assert [d.payload for d in net.received("c", topic)] == [b"x"] * (WINDOW + 1) + [b"y"] * 7


@FAST
@given(sizes=st.lists(st.integers(1, 200), min_size=1, max_size=6))
def test_in_flight_and_consumed_count_the_messages_of_each_batch(sizes: list[int]) -> None:
    net = SimNet(config=CoreConfig(flow_window=100_000))
    for node in "abc":
        net.add(node, ["a"] if node != "a" else [])
    net.settle()
    topic = next(t for i in range(1000) if HashRing(["a", "b", "c"]).owner(t := f"t{i}") == "b")
    net.subscribe("c", exact_group(topic))
    net.run_until_quiet()
    before = len(net.sent)
    net.hold("b", "a")  # b's confirmations to a wait
    net.hold("c", "b")  # and c's to b
    net.publish_batch(
        "a", [publish_entry(0, topic, [b"%d" % i] * n, LEVEL_OWNER) for i, n in enumerate(sizes)]
    )
    net.run_until_quiet()
    total = sum(sizes)
    assert [e[1] for _, e in net.entries(FORWARD)] == sizes  # an entry per batch ...
    assert net.core("a").flow.inflight == {"b": total}  # ... counting its n messages
    assert net.core("b").flow.inflight == {"c": total}
    net.release("b", "a")
    net.release("c", "b")
    net.advance(1.0)  # owed confirmations go at the next tick
    consumed = {
        (s.src, s.dst): count for s, count in net.entries(CONSUMED) if s in net.sent[before:]
    }
    assert consumed == {("b", "a"): total, ("c", "b"): total}
    assert net.core("a").flow.inflight == {"b": 0}
    assert net.core("b").flow.inflight == {"c": 0}
    assert len(net.received("c", topic)) == total


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
