"""A node's members of durable consumers: shares, verdicts to the owner, bad input.

On the simulated cluster (tests/core/node_net.py): what an owner sends a node
(``consumer_msg``, injected as the owner's frame) is split among its members in
contiguous shares, in turn; a member's verdicts go to its topic's owner.
"""

from __future__ import annotations

import pytest

from tests.core.consumer_world import ask, cluster, got, topic_owned_by, verdict
from zdps.topics import MAX_TOPIC_BYTES
from zdps.wire.consumers import ACK, ConsumerMsg

pytestmark = pytest.mark.timeout(60)


def test_a_node_splits_an_owner_s_run_in_contiguous_shares_in_turn() -> None:
    net = cluster()
    topic = topic_owned_by("a")
    for member in (b"m1", b"m2", b"m3"):
        assert ask(net, "b", "consume", member, topic=topic, name="w")[0]
    run = [[topic, "w", 1, seq, 1, b"job %d" % seq] for seq in range(1, 8)]
    net.inject("b", net.envelope("a", [ConsumerMsg(run)]))
    net.run_until_quiet()
    shares = {m: [seq for _, seq, _, _ in got(net, "b", m)] for m in (b"m1", b"m2", b"m3")}
    assert sorted(shares.values()) == [[1, 2, 3], [4, 5, 6], [7]]
    net.inject("b", net.envelope("a", [ConsumerMsg(run[:3])]))
    net.run_until_quiet()
    assert sum(len(got(net, "b", m)) for m in shares) == 10  # the next run: the next member
    assert len({len(got(net, "b", m)) for m in shares}) > 1


def test_what_names_no_valid_consumer_is_counted_and_nothing_is_pushed() -> None:
    net = cluster()
    bad = [["t" * MAX_TOPIC_BYTES, "w", 1, 1, 1, b"x"]]  # no consumer key that long
    net.inject("b", net.envelope("a", [ConsumerMsg(bad)]))
    net.run_until_quiet()
    assert net.core("b").errors["malformed"] == 1
    assert [c for _, c, m in net.errors["b"] if "consumer_msg from a" in m] == ["malformed"]
    assert not any(k[0] == "b" and k[1] != b"admin" for k in net.client_frames)


def test_verdicts_go_to_the_owner_of_each_topic() -> None:
    net = cluster()
    topic = topic_owned_by("a")
    assert ask(net, "b", "consumer_create", topic=topic, name="w", start="all")[0]
    assert ask(net, "b", "consume", b"m", topic=topic, name="w")[0]
    net.publish_run("c", topic, [b"job"], 1)
    net.run_until_quiet()
    handed = got(net, "b", b"m")
    assert len(handed) == 1
    verdict(net, "b", b"m", topic, handed, ACK)
    info = ask(net, "c", "consumer_info", topic=topic, name="w")[1]
    assert info["pending"] == 0 and info["counts"]["acked"] == 1
