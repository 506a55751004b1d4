"""Queue groups on the simulated cluster: each message to one member of each group.

Members are client connections that sent ``queue_join``; their shares are the ``msg``
frames recorded per (node, member). Protocol rules: every message a group's members
could get goes to exactly one of them, in proportion to the members per node; plain
subscribers still get everything; joins, leaves, gone clients and dead nodes move the
shares at once; a share nobody can take is counted.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.node_net import SimNet, mesh
from zdps.core.ring import HashRing
from zdps.core.tunables import CoreConfig
from zdps.wire import LEVEL_OWNER
from zdps.wire.api import API_QUEUED, API_REPLY
from zdps.wire.batches import unpack_batch

pytestmark = pytest.mark.timeout(60)

NODES = ("a", "b", "c")


def topic_owned_by(owner: str, prefix: str = "jobs") -> str:
    ring = HashRing(NODES)
    return next(f"{prefix}-{i}" for i in range(10_000) if ring.owner(f"{prefix}-{i}") == owner)


def cluster() -> SimNet:
    return mesh(NODES, CoreConfig())


def owned(owner: str = "a") -> tuple[SimNet, str, bytes]:
    """A cluster, a topic ``owner`` owns, and the topic's exact subscription."""
    topic = topic_owned_by(owner)
    return cluster(), topic, topic.encode() + b"\x00"


def join(net: SimNet, node: str, member: bytes, queue: str, subscription: bytes) -> None:
    ref = net.request(node, "queue_join", {"queue": queue, "subscription": subscription}, member)
    net.run_until_quiet()
    assert replies(net, node, member, ref) == [True]


def leave(net: SimNet, node: str, member: bytes, queue: str, subscription: bytes) -> bool:
    ref = net.request(node, "queue_leave", {"queue": queue, "subscription": subscription}, member)
    net.run_until_quiet()
    return replies(net, node, member, ref)[0]


def replies(net: SimNet, node: str, client: bytes, ref: int) -> list:
    frames = net.client_frames.get((node, client), [])
    return [f[3] for _, f in frames if f[0] == API_REPLY and f[1] == ref]


def shares(net: SimNet, node: str, member: bytes) -> list[tuple[int, bytes]]:
    """(seq, payload) of every message pushed to ``member`` at ``node``."""
    got = []
    for _, frame in net.client_frames.get((node, member), []):
        if frame[0] == API_QUEUED:
            _, _topic, seq, _epoch, n, batch = frame
            got += [(seq + i, p) for i, p in enumerate(unpack_batch(batch, n))]
    return got


def publish(net: SimNet, topic: str, count: int, at: str = "a", per_batch: int = 1) -> list[bytes]:
    sent = []
    for start in range(0, count, per_batch):
        payloads = [b"m%d" % i for i in range(start, min(count, start + per_batch))]
        net.publish_run(at, topic, payloads, LEVEL_OWNER)
        sent += payloads
    net.run_until_quiet()
    return sent


def test_each_message_goes_to_one_member_in_proportion_to_each_nodes_members():
    net, topic, sub = owned("a")
    join(net, "b", b"w1", "workers", sub)
    join(net, "c", b"w2", "workers", sub)
    join(net, "c", b"w3", "workers", sub)
    sent = publish(net, topic, 300)
    got = {
        m: [p for _, p in shares(net, n, m)] for n, m in (("b", b"w1"), ("c", b"w2"), ("c", b"w3"))
    }
    everything = [p for ps in got.values() for p in ps]
    assert sorted(everything) == sorted(sent)  # all of them, none twice
    assert [len(ps) for ps in got.values()] == [100, 100, 100]
    assert net.core("c").counters["queue_delivered"] == 200


def test_the_owners_own_members_take_their_turns_like_the_others():
    net, topic, sub = owned("a")
    join(net, "a", b"w1", "w", sub)
    join(net, "b", b"w2", "w", sub)
    join(net, "a", b"w3", "w", sub)
    publish(net, topic, 90, at="c")
    assert [len(shares(net, n, m)) for n, m in (("a", b"w1"), ("a", b"w3"), ("b", b"w2"))] == [
        30,
        30,
        30,
    ]


def test_plain_subscribers_and_every_queue_group_get_every_message():
    net, topic, sub = owned("b")
    net.subscribe("c", sub)
    join(net, "a", b"x1", "x", sub)
    join(net, "c", b"x2", "x", sub)
    join(net, "a", b"y1", "y", sub)
    sent = publish(net, topic, 40)
    plain = [d.payload for d in net.deliveries["c"] if d.topic == topic]
    assert plain == sent
    x = shares(net, "a", b"x1") + shares(net, "c", b"x2")
    assert sorted(p for _, p in x) == sorted(sent)
    assert [p for _, p in shares(net, "a", b"y1")] == sent


def test_a_batch_is_split_among_a_nodes_members_in_contiguous_shares():
    net, topic, sub = owned("a")
    for member in (b"w1", b"w2", b"w3"):
        join(net, "c", member, "w", sub)
    sent = publish(net, topic, 10, per_batch=10)
    got = [shares(net, "c", m) for m in (b"w1", b"w2", b"w3")]
    assert sorted(len(g) for g in got) == [2, 4, 4]
    for share in got:
        seqs = [seq for seq, _ in share]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert sorted(p for g in got for (p,) in [[x[1]] for x in g]) == sorted(sent)


def test_prefix_queue_groups_take_every_topic_under_the_prefix():
    net = cluster()
    join(net, "b", b"w", "w", b"jobs.")
    sent = publish(net, "jobs.one", 3) + publish(net, "jobs.two", 3) + publish(net, "other", 3)
    assert sorted(p for _, p in shares(net, "b", b"w")) == sorted(sent[:6])


def test_leaving_moves_the_shares_to_the_members_left():
    net, topic, sub = owned("a")
    join(net, "b", b"w1", "w", sub)
    join(net, "c", b"w2", "w", sub)
    assert leave(net, "b", b"w1", "w", sub) is True
    assert leave(net, "b", b"w1", "w", sub) is False
    publish(net, topic, 20)
    assert shares(net, "b", b"w1") == []
    assert len(shares(net, "c", b"w2")) == 20


def test_a_gone_client_is_no_member_and_a_dead_node_takes_its_members_along():
    net, topic, sub = owned("a")
    join(net, "b", b"w1", "w", sub)
    join(net, "c", b"w2", "w", sub)
    net.client_gone("b", b"w1")
    net.run_until_quiet()
    assert net.core("a").overlay.members(next(iter(net.core("a").overlay.queue_keys))) == {"c": 1}
    join(net, "b", b"w3", "w", sub)
    net.crash("c")
    net.advance(30)  # the failure detector declares c dead
    publish(net, topic, 10)
    assert len(shares(net, "b", b"w3")) == 10


def test_a_share_for_a_node_whose_member_left_meanwhile_is_counted_as_lost():
    net, topic, sub = owned("a")
    join(net, "b", b"w1", "w", sub)
    b = net.core("b")
    b.queues.client_gone(b"w1", b.outbox)  # the update to the owner is still queued
    net.publish_run("a", topic, [b"late"], LEVEL_OWNER)
    net.run_until_quiet()
    assert b.counters["queue_undelivered"] == 1
    assert b.queues.next_member(next(iter(b.overlay.queue_keys), b""), set(), 3) is None


def test_a_member_whose_connection_cannot_take_its_share_hands_it_on():
    net, _, sub = owned("a")
    join(net, "c", b"w1", "w", sub)
    join(net, "c", b"w2", "w", sub)
    key = next(iter(net.core("c").overlay.queue_keys))
    queues = net.core("c").queues
    assert queues.next_member(key, {b"w1"}, 1) == b"w2"
    assert queues.next_member(key, {b"w1", b"w2"}, 4) is None
    assert net.core("c").counters["queue_undelivered"] == 4


def test_bad_queue_requests_are_refused_and_counted():
    net = cluster()
    for args in (
        {"queue": "", "subscription": b"t\x00"},
        {"queue": "w\x1f", "subscription": b"t\x00"},
        {"queue": "w", "subscription": b"\x1f=w\x1ft\x00"},
        {"queue": "w", "subscription": "t"},
        {"queue": "w" * 65, "subscription": b"t\x00"},
        {"queue": "w" * 64, "subscription": b"t" * 200 + b"\x00"},
    ):
        ref = net.request("a", "queue_join", args, b"bad")
        assert replies(net, "a", b"bad", ref)[0]["code"] == "invalid_topic", args
    assert net.core("a").errors["invalid_topic"] == 6
    assert net.core("a").overlay.local_groups == 0


def test_a_sub_cannot_pose_as_a_queue_member_through_the_xpub():
    net = cluster()
    net.subscribe("b", b"\x1f=w\x1ft\x00")
    assert net.core("b").overlay.local_groups == 0
    assert net.core("b").errors["invalid_topic"] == 1


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["join", "leave", "gone", "publish"]),
            st.sampled_from(NODES),
            st.sampled_from([b"m1", b"m2", b"m3"]),
            st.integers(1, 5),
        ),
        max_size=25,
    )
)
def test_any_interleaving_gives_each_message_to_exactly_one_member(steps):
    """After each step settles, every message published while the group had members
    reaches exactly one of them, and none reaches a member that had left."""
    net, topic, sub = owned("a")
    members: set[tuple[str, bytes]] = set()
    expected: Counter[bytes] = Counter()
    counter = 0
    for op, node, member, n in steps:
        if op == "join":
            join(net, node, member, "w", sub)
            members.add((node, member))
        elif op == "leave":
            assert leave(net, node, member, "w", sub) is ((node, member) in members)
            members.discard((node, member))
        elif op == "gone":
            net.client_gone(node, member)
            net.run_until_quiet()
            members.discard((node, member))
        else:
            payloads = [b"p%d" % (counter + i) for i in range(n)]
            counter += n
            net.publish_run("b", topic, payloads, LEVEL_OWNER)
            net.run_until_quiet()
            if members:
                expected.update(payloads)
    got: Counter[bytes] = Counter()
    for node in NODES:
        for _, member in [(n, m) for n, m in net.client_frames if n == node]:
            got.update(p for _, p in shares(net, node, member))
    assert got == expected
    assert sum(net.core(n).counters["queue_undelivered"] for n in NODES) == 0
