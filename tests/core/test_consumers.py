"""Durable consumers on the simulated cluster: ops at the owner, deliveries, verdicts.

Members are client connections that sent ``consume``; the messages pushed to them are
the ``cmsg`` frames recorded per (node, member), and their verdicts go in as ``cack``
frames. Protocol rules: ops reach the owner from any node; each message goes to one
member, again after ``ack_wait`` or a nak until acked, and to the dead-letter topic
after ``max_deliver``; no more than ``max_pending`` wait for verdicts; history keeps
what a consumer has not had.
"""

from __future__ import annotations

import pytest

from tests.core.consumer_world import ask, cluster, got, publish, topic_owned_by, verdict
from zdps.core.ring import HashRing
from zdps.wire import LEVEL_REPLICATED
from zdps.wire.consumers import ACK, NAK, TERM

pytestmark = pytest.mark.timeout(60)


def test_ops_reach_the_owner_from_any_node() -> None:
    net = cluster()
    topic = topic_owned_by("a")
    ok, info = ask(net, "b", "consumer_create", topic=topic, name="w", max_pending=7)
    assert ok and info["max_pending"] == 7 and info["pending"] == 0
    assert ask(net, "c", "consumer_create", topic=topic, name="w", max_pending=7)[0]
    ok, error = ask(net, "c", "consumer_create", topic=topic, name="w", max_pending=8)
    assert not ok and error["code"] == "consumer_exists"
    assert ask(net, "c", "consumer_list", topic=topic) == (True, ["w"])
    assert ask(net, "a", "consumer_info", topic=topic, name="w")[1]["name"] == "w"
    assert ask(net, "b", "consumer_delete", topic=topic, name="w") == (True, True)
    ok, error = ask(net, "b", "consumer_info", topic=topic, name="w")
    assert not ok and error["code"] == "no_consumer"


def test_each_message_goes_to_one_member_until_acked() -> None:
    net = cluster()
    topic = topic_owned_by("a")
    assert ask(net, "b", "consumer_create", topic=topic, name="w", start="all")[0]
    assert ask(net, "b", "consume", b"m1", topic=topic, name="w") == (True, True)
    assert ask(net, "c", "consume", b"m2", topic=topic, name="w") == (True, True)
    publish(net, topic, 10)
    first, second = got(net, "b", b"m1"), got(net, "c", b"m2")
    assert sorted(p for *_, p in first + second) == [b"job %d" % i for i in range(10)]
    assert len(first) == len(second) == 5
    verdict(net, "b", b"m1", topic, first, ACK)
    verdict(net, "c", b"m2", topic, second, ACK)
    info = ask(net, "a", "consumer_info", topic=topic, name="w")[1]
    assert info["pending"] == 0 and info["counts"] == {"delivered": 10, "acked": 10}
    net.advance(60)  # acked: nothing goes again
    assert len(got(net, "b", b"m1")) == len(got(net, "c", b"m2")) == 5


def test_unacked_messages_go_again_then_to_the_dead_letter_topic() -> None:
    net = cluster()
    topic = topic_owned_by("a")
    dead = f"{topic}.w.dead"
    net.subscribe("c", dead.encode() + b"\x00")
    net.run_until_quiet()
    args = {"topic": topic, "name": "w", "ack_wait": 5.0, "max_deliver": 2}
    assert ask(net, "b", "consumer_create", **args)[0]
    assert ask(net, "b", "consume", b"m", topic=topic, name="w")[0]
    publish(net, topic, 1)
    net.advance(6)
    assert [(d, p) for *_, d, p in got(net, "b", b"m")] == [(1, b"job 0"), (2, b"job 0")]
    net.advance(6)
    assert [d.payload for d in net.deliveries["c"] if d.topic == dead] == [b"job 0"]
    info = ask(net, "a", "consumer_info", topic=topic, name="w")[1]
    assert info["counts"] == {"delivered": 1, "redelivered": 1, "dead_lettered": 1}


def test_a_nak_sends_it_again_at_once_and_term_ends_it() -> None:
    net = cluster()
    topic = topic_owned_by("c")
    assert ask(net, "a", "consumer_create", topic=topic, name="w")[0]
    assert ask(net, "a", "consume", b"m", topic=topic, name="w")[0]
    publish(net, topic, 2)
    first = got(net, "a", b"m")
    verdict(net, "a", b"m", topic, first[:1], NAK)
    verdict(net, "a", b"m", topic, first[1:], TERM)
    again = got(net, "a", b"m")[2:]
    assert [(d, p) for *_, d, p in again] == [(2, b"job 0")]
    verdict(net, "a", b"m", topic, again, ACK)
    net.advance(100)
    assert len(got(net, "a", b"m")) == 3  # acked and termed: neither goes again


def test_max_pending_holds_the_rest_back_until_verdicts_come() -> None:
    net = cluster()
    topic = topic_owned_by("a")
    assert ask(net, "b", "consumer_create", topic=topic, name="w", max_pending=3)[0]
    assert ask(net, "b", "consume", b"m", topic=topic, name="w")[0]
    publish(net, topic, 10)
    assert len(got(net, "b", b"m")) == 3
    verdict(net, "b", b"m", topic, got(net, "b", b"m"), ACK)
    assert len(got(net, "b", b"m")) == 6


def test_history_keeps_what_a_consumer_has_not_had() -> None:
    net = cluster(history=5)
    topic = topic_owned_by("a")
    assert ask(net, "b", "consumer_create", topic=topic, name="w")[0]
    publish(net, topic, 20)  # no member yet: everything waits in history
    assert len(net.core("a").history.topics[topic].entries) == 20
    assert ask(net, "c", "consume", b"m", topic=topic, name="w")[0]
    net.advance(1)  # a member came: at the next tick, what waited goes
    received = got(net, "c", b"m")
    assert len(received) == 20
    verdict(net, "c", b"m", topic, received, ACK)
    assert net.core("a").history.topics[topic].size == 20  # held until the next tick
    net.advance(1)
    assert net.core("a").history.topics[topic].size == 5  # the retention again


def test_a_replica_takes_over_when_the_owner_dies_and_nothing_acked_is_lost() -> None:
    net = cluster()
    topic = topic_owned_by("a")
    args = {"topic": topic, "name": "w", "ack_wait": 5.0, "start": "all"}
    assert ask(net, "c", "consumer_create", **args)[0]
    assert ask(net, "c", "consume", b"m", topic=topic, name="w")[0]
    for i in range(10):
        net.publish_run("b", topic, [b"job %d" % i], LEVEL_REPLICATED)
    net.run_until_quiet()
    first = got(net, "c", b"m")
    assert len(first) == 10
    verdict(net, "c", b"m", topic, first[:4], ACK)
    net.advance(0.5)  # a timer tick: the state went to the replica
    net.crash("a")
    net.advance(30)  # the failure detector declares a dead; the replica owns the topic
    for i in range(10, 13):
        net.publish_run("b", topic, [b"job %d" % i], LEVEL_REPLICATED)
    net.run_until_quiet()
    after = got(net, "c", b"m")[10:]
    assert {p for *_, p in after} == {b"job %d" % i for i in range(4, 13)}
    flagged = {p: d for *_, d, p in after}
    assert all(flagged[b"job %d" % i] >= 2 for i in range(4, 10))  # went before: flagged
    assert all(flagged[b"job %d" % i] == 1 for i in range(10, 13))  # new since
    verdict(net, "c", b"m", topic, after, ACK)
    owner = HashRing(["b", "c"]).owner(topic)
    info = ask(net, owner, "consumer_info", topic=topic, name="w")[1]
    assert info["pending"] == 0 and info["counts"]["succeeded"] == 1


def test_a_consumer_created_just_before_its_owner_dies_lives_on() -> None:
    net = cluster()
    topic = topic_owned_by("a")
    assert ask(net, "c", "consumer_create", topic=topic, name="w")[0]
    net.crash("a")  # before any timer tick: the creation itself reached the replica
    net.advance(30)
    owner = HashRing(["b", "c"]).owner(topic)
    assert ask(net, owner, "consumer_list", topic=topic) == (True, ["w"])
