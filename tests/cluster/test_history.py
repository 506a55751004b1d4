"""History, replication and recovery through real daemons started by the CLI."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest

from tests.cluster.harness import Cluster, NodeProc, wait_for
from zdps import AsyncClient, Gap, Message
from zdps.core.ring import HashRing

pytestmark = pytest.mark.timeout(120)


def placed(owner: str, replica: str, nodes: list[str]) -> str:
    """A topic whose owner and first replica on a ring of ``nodes`` are as given."""
    ring = HashRing(nodes)
    return next(t for i in range(10_000) if ring.successors(t := f"h{i}", 2) == [owner, replica])


def publish(node: NodeProc, topic: str, first: int, count: int) -> list[int]:
    with node.client() as client:
        return [
            client.publish(topic, f"m{i}", ack="replicated").seq
            for i in range(first, first + count)
        ]


def drain(subscription, count: int, timeout: float = 20) -> list[Message | Gap]:
    """The next ``count`` deliveries, failing after ``timeout`` seconds."""
    got: list[Message | Gap] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        assert time.monotonic() < deadline, f"only {len(got)} of {count} deliveries: {got}"
        item = subscription.recv(timeout=0.2)
        if item is not None:
            got.append(item)
    return got


def test_new_owner_continues_the_history_after_kill9(cluster: Cluster) -> None:
    a, b, c = cluster.three()
    topic = placed("B", "C", ["A", "B", "C"])
    assert publish(a, topic, 0, 50) == list(range(1, 51))
    b.proc.send_signal(signal.SIGKILL)
    wait_for(lambda: a.alive_peers() == {"C"} and c.alive_peers() == {"A"}, 10, "B to be dead")
    assert a.members(topic)["owner"] == "C"
    assert publish(a, topic, 50, 10) == list(range(1, 11))  # a new epoch at the new owner
    with a.client() as client:
        entries = client.history(topic, since=0)["entries"]
    payloads = [e[2] for e in entries]
    assert payloads == [f"m{i}".encode() for i in range(60)]  # the old history came along
    epochs = [e[0] for e in entries]
    assert epochs[:50] == [epochs[0]] * 50 and epochs[50:] == [epochs[50]] * 10
    assert epochs[50] > epochs[0]


def test_subscriber_recovers_what_it_missed_while_its_node_was_down(cluster: Cluster) -> None:
    a, _, c = cluster.three()
    topic = placed("A", "B", ["A", "B", "C"])
    with c.client() as client:
        subscription = client.subscribe(topic)
        publish(a, topic, 0, 20)
        live = drain(subscription, 20)
        c.proc.send_signal(signal.SIGKILL)
        c.proc.wait(5)
        wait_for(lambda: a.alive_peers() == {"B"}, 10, "C to be dead")
        publish(a, topic, 20, 30)  # C is down: these never reach the subscriber live
        cluster.start("C", seeds=[a], same_as=c)
        cluster.wait_mesh()
        # Once its link is re-established the subscription subscribes again and fetches
        # what was published meanwhile, without waiting for a later message to show it.
        caught_up = drain(subscription, 30)
        wait_for(lambda: "C" in a.members(topic)["nodes"], 10, "the subscription to return")
        publish(a, topic, 50, 10)
        later = drain(subscription, 10)
    got = live + caught_up + later
    assert [type(x) for x in got] == [Message] * 60
    assert [m.data for m in got] == [f"m{i}".encode() for i in range(60)]
    assert [m.seq for m in got] == list(range(1, 61))
    assert len({m.epoch for m in got}) == 1


def test_gap_beyond_retention_is_reported_and_since_replays(cluster: Cluster) -> None:
    a, b, c = cluster.three()
    topic = placed("A", "B", ["A", "B", "C"])
    created = cluster.run(
        "topic", "create", topic, "--history", "5", "--ttl", "60", "--node", c.api
    )
    assert created.returncode == 0, created.stderr
    proc, out, err = cluster.spawn("subscribe", "--json", topic, "--node", c.api, name="sub")
    wait_for(lambda: "subscribed" in err.read_text(), 15, "the subscriber to go live")
    publish(a, topic, 0, 3)
    wait_for(lambda: len(out.read_text().splitlines()) == 3, 10, "3 messages")
    proc.send_signal(signal.SIGSTOP)  # the subscriber stops reading ...
    c.proc.send_signal(signal.SIGKILL)  # ... and its node dies with whatever it queued
    c.proc.wait(5)
    wait_for(lambda: a.alive_peers() == {"B"}, 10, "C to be dead")
    publish(a, topic, 3, 10)  # seq 4..13 while the subscriber's node is down
    cluster.start("C", seeds=[a], same_as=c)
    cluster.wait_mesh()
    proc.send_signal(signal.SIGCONT)
    wait_for(lambda: "C" in a.members(topic)["nodes"], 15, "the subscription to return")
    publish(a, topic, 13, 1)  # seq 14 shows the gap; history holds only 10..14
    wait_for(lambda: len(out.read_text().splitlines()) == 3 + 1 + 5, 15, "recovery")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [x["seq"] for x in lines[:3]] == [1, 2, 3]
    assert lines[3] == {"gap": {"topic": topic, "epoch": lines[0]["epoch"], "from": 4, "to": 9}}
    assert [x["seq"] for x in lines[4:]] == [10, 11, 12, 13, 14]
    assert [x["data"] for x in lines[4:]] == [f"m{i}" for i in range(9, 14)]

    replay = cluster.run(
        "subscribe", "--json", "--since", "11", "--count", "4", topic, "--node", b.api
    )
    assert replay.returncode == 0, replay.stderr
    assert [json.loads(x)["seq"] for x in replay.stdout.splitlines()] == [11, 12, 13, 14]


def test_replicated_ack_needs_a_replica(cluster: Cluster) -> None:
    a = cluster.start("A")
    refused = cluster.run("publish", "--ack", "replicated", "t", "x", "--node", a.api)
    assert refused.returncode != 0 and "no_replica" in refused.stderr
    assert cluster.run("publish", "t", "x", "--node", a.api).returncode == 0
    b = cluster.start("B", seeds=[a])
    cluster.wait_mesh()
    ok = cluster.run("publish", "--ack", "replicated", "t", "y", "--node", b.api)
    assert ok.returncode == 0, ok.stderr


def test_since_below_what_history_holds_reports_the_gap(cluster: Cluster) -> None:
    a = cluster.start("A")
    created = cluster.run("topic", "create", "hs", "--history", "5", "--ttl", "60", "--node", a.api)
    assert created.returncode == 0, created.stderr
    published = cluster.run(
        "publish", "hs", "--node", a.api, input="".join(f"{i}\n" for i in range(1, 21))
    )
    assert published.returncode == 0, published.stderr
    as_json = cluster.run(
        "subscribe", "--json", "--since", "1", "--count", "5", "hs", "--node", a.api
    )
    assert as_json.returncode == 0, as_json.stderr
    lines = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert lines[0] == {"gap": {"topic": "hs", "epoch": lines[1]["epoch"], "from": 1, "to": 15}}
    assert [x["seq"] for x in lines[1:]] == [16, 17, 18, 19, 20]
    as_text = cluster.run("subscribe", "--since", "3", "--count", "5", "hs", "--node", a.api)
    assert as_text.returncode == 0, as_text.stderr
    assert as_text.stdout.splitlines() == ["16", "17", "18", "19", "20"]
    assert f"gap: hs epoch {lines[1]['epoch']} seq 3-15 lost" in as_text.stderr


def test_since_below_what_history_holds_is_a_gap_in_both_clients(cluster: Cluster) -> None:
    a = cluster.start("A")
    with a.client() as client:
        client.create_topic("hs", history=5, ttl=60)
        list(client.publish_many(("hs", b"%d" % i) for i in range(1, 21)))  # one batch
        with client.subscribe("hs", since=1) as subscription:
            got = [subscription.recv(5) for _ in range(6)]
    epoch = got[1].epoch
    assert got[0] == Gap("hs", epoch, 1, 15)
    assert [(m.seq, m.data) for m in got[1:]] == [(i, b"%d" % i) for i in range(16, 21)]

    async def in_asyncio() -> list:
        async with AsyncClient(a.api) as aclient:
            subscription = await aclient.subscribe("hs", since=12)
            try:
                return [await asyncio.wait_for(subscription.recv(), 5) for _ in range(6)]
            finally:
                subscription.close()

    got = asyncio.run(in_asyncio())
    assert got[0] == Gap("hs", epoch, 12, 15)
    assert [m.seq for m in got[1:]] == [16, 17, 18, 19, 20]
