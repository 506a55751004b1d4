"""Ownership-related rules: idle sequencing state, and subscribe barriers across a death."""

from __future__ import annotations

import pytest

from tests.core.node_net import SimNet
from zdps.core.ring import HashRing
from zdps.core.tunables import CoreConfig
from zdps.topics import SYNC_PREFIX, exact_group
from zdps.wire import BARRIER

pytestmark = pytest.mark.timeout(60)


def test_idle_topics_are_forgotten_and_restart_with_a_new_epoch() -> None:
    net = SimNet(config=CoreConfig(idle_topic_ttl=5.0))
    net.add("a")
    net.subscribe("a", exact_group("busy"))
    net.subscribe("a", exact_group("idle"))
    for topic in ("busy", "idle"):
        net.publish("a", topic, b"1")
    net.run_until_quiet()
    for _ in range(10):  # "busy" keeps being used, "idle" does not
        net.advance(1.0)
        net.publish("a", "busy", b"x")
        net.run_until_quiet()
    assert len(net.core("a").sequencer) == 1
    net.publish("a", "idle", b"2")
    net.run_until_quiet()
    (first, _), (second, seq) = net.stamps("a", "idle")
    assert second > first and seq == 1
    assert len({epoch for epoch, _ in net.stamps("a", "busy")}) == 1


def test_a_barrier_whose_owner_dies_asks_the_new_owner() -> None:
    net = SimNet()
    for name, seeds in (("a", []), ("b", ["a"]), ("c", ["a"])):
        net.add(name, seeds)
    net.settle()
    topic = next(
        t
        for i in range(2000)
        if HashRing(["a", "b", "c"]).owner(t := f"t{i}") == "c"
        and HashRing(["a", "b"]).owner(t) == "b"
    )
    group = exact_group(topic)
    net.crash("c")  # the barrier to c will be lost; a does not know yet
    net.subscribe("a", group)
    net.subscribe("a", SYNC_PREFIX + b"tok")
    ref = net.request("a", "ready", {"token": "tok", "groups": [group]})
    net.run_until_quiet()
    assert ref not in net.replies("a")
    net.advance(3.0)  # c is declared dead; b owns the topic now
    barriers_to_b = [m for s in net.sent if s.dst == "b" for m in s.messages if m[0] == BARRIER]
    assert barriers_to_b, "the new owner was asked"
    assert net.replies("a")[ref] == (True, True)
    assert net.core("b").overlay.members(group) == {"a": 1}
