"""Limits of the core (docs/PROTOCOL.md §10), each refused past its bound and counted:
max_topic (publishes and subscriptions of longer topics), max_groups
(zdps/core/groups.py: what is held already, and leaving, still work) and
max_peers (zdps/core/membership.py: a further node, whether it says hello or is heard
of from a peer, is not admitted)."""

from __future__ import annotations

import dataclasses

import pytest

from tests.core.helpers import CONFIG
from tests.core.node_net import SimNet
from zdps.topics import exact_group

pytestmark = pytest.mark.timeout(30)


def test_a_subscription_past_max_groups_is_refused_and_counted() -> None:
    net = SimNet(config=dataclasses.replace(CONFIG, max_groups=2))
    net.add("a")
    net.add("b", ["a"])
    net.settle()
    for topic in ("t1", "t2", "t3"):
        net.subscribe("a", exact_group(topic))
    net.subscribe("a", exact_group("t1"))  # a second SUB of a group held: fine
    net.run_until_quiet()
    assert net.core("a").overlay.which_local_groups() == {exact_group("t1"), exact_group("t2")}
    assert net.error_codes("a") == {"too_many_groups": 1}
    assert exact_group("t3") not in net.core("b").overlay.which_groups()
    net.unsubscribe("a", exact_group("t3"))  # its unsubscribe is harmless
    net.unsubscribe("a", exact_group("t2"))
    net.subscribe("a", exact_group("t3"))  # room again
    net.run_until_quiet()
    assert exact_group("t3") in net.core("b").overlay.which_groups()
    assert net.error_codes("a") == {"too_many_groups": 1}


def test_a_node_past_max_peers_is_not_admitted_and_counted() -> None:
    net = SimNet(config=dataclasses.replace(CONFIG, max_peers=1))
    net.add("a")
    net.add("b", ["a"])
    net.settle()
    net.add("c", ["a"])  # c's hello to a, and news of c at b, find both full
    net.advance(5.0)
    for node, peer in (("a", "b"), ("b", "a")):
        assert set(net.core(node).membership.peers) == {peer}
        assert net.core(node).ring.nodes == {"a", "b"}
    assert net.error_codes("a")["too_many_peers"] >= 1
    assert net.core("a").overlay.peer_digest("c") is None
    assert not net.core("c").membership.alive()  # c never became anyone's peer


def test_a_topic_over_max_topic_is_refused_for_publishes_and_subscriptions() -> None:
    net = SimNet(config=dataclasses.replace(CONFIG, max_topic=4))
    net.add("a")
    net.settle()
    net.subscribe("a", exact_group("long-topic"))
    net.subscribe("a", exact_group("ok"))
    ref = net.publish("a", "long-topic", b"x")
    net.run_until_quiet()
    assert net.core("a").overlay.which_local_groups() == {exact_group("ok")}
    assert ref in net.nacks("a") and net.error_codes("a") == {"invalid_topic": 2}
