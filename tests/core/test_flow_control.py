"""Flow control: unconfirmed data to a peer is bounded, and nothing accepted is lost.

The owner counts fan-out copies until the receiving node confirms it processed them
(``consumed``); past the window it is saturated: forwards wait, unsequenced and
unacknowledged, until confirmations return; then everything flows in order.
"""

from __future__ import annotations

import pytest

from tests.core.node_net import SimNet
from zdps.core.ring import HashRing
from zdps.core.tunables import CoreConfig
from zdps.topics import exact_group
from zdps.wire import CONSUMED

pytestmark = pytest.mark.timeout(60)

WINDOW = 10


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
