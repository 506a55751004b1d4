"""Queue groups through real daemons (docs/PROTOCOL.md §8.5): each message to one member
of each group, wherever the members are, from the Python clients (sync and async) and
``zdps subscribe --group``; a member that dies hands its share on; members join again
after their node restarts; bad arguments are refused before anything is sent."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest

from tests.cluster.harness import Cluster, NodeProc, wait_for
from zdps import AsyncClient, Client
from zdps.client.queue_member import QueueSubscription

pytestmark = pytest.mark.timeout(120)


def drain(member: QueueSubscription, quiet: float = 1.0) -> list[bytes]:
    """What ``member`` receives until nothing comes for ``quiet`` seconds."""
    got = []
    while (message := member.recv(quiet)) is not None:
        got.append(message.data)
    return got


def members_counted(
    node: NodeProc, topic: str, count: int, reading: QueueSubscription | None = None
) -> None:
    """Wait until ``node`` (the publisher's) sees ``count`` members of the group on
    ``topic`` in the cluster: joins are gossiped, so the owner may not know them yet.
    ``reading``: a member that waits for messages meanwhile (and joins again then)."""

    def counted() -> bool:
        if reading is not None:
            assert reading.recv(0.05) is None
        with node.client() as client:
            members = client.members(topic)
        return sum(members.get("queues", {}).get("w", {}).values()) == count

    wait_for(counted, 10, f"{count} members of w on {topic}")


def test_each_message_goes_to_one_member_of_each_group_on_any_node(cluster: Cluster) -> None:
    a, b, c = cluster.three()
    proc, out, err = cluster.spawn(
        "subscribe", "--json", "--group", "w", "jobs", "--node", c.api, name="cli-member"
    )
    wait_for(lambda: "subscribed jobs in group w" in err.read_text(), 10, "the CLI member")
    with (
        Client(b.api) as on_b,
        Client(c.api) as on_c,
        on_b.subscribe("jobs", group="w") as m1,
        on_c.subscribe("jobs", group="w") as m2,
        on_b.subscribe("jobs", group="other") as lone,
        on_c.subscribe("jobs") as plain,
    ):
        members_counted(a, "jobs", 3)
        sent = [b"job %d" % i for i in range(60)]
        with Client(a.api) as publisher:
            for payload in sent:
                assert publisher.publish("jobs", payload).subscribers == 3  # plain, w, other
        got_1, got_2 = drain(m1), drain(m2)
        wait_for(lambda: out.read_text().count("\n") >= 60 - len(got_1) - len(got_2), 10, "CLI")
        got_cli = [json.loads(line)["data"].encode() for line in out.read_text().splitlines()]
        assert sorted(got_1 + got_2 + got_cli) == sorted(sent)  # each once, none lost
        assert len(got_1) == len(got_2) == len(got_cli) == 20  # one turn each, in turn
        assert drain(lone) == sent  # a lone member gets everything, in order
        assert [m.data for m in (plain.recv(5) for _ in sent)] == sent
    counted = [n.counters() for n in (a, b, c)]
    assert sum(x["queue_delivered"] for x in counted) == 120
    assert sum(x["queue_undelivered"] for x in counted) == 0
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == 0


def test_a_member_that_dies_hands_its_share_on_and_status_shows_members(cluster: Cluster) -> None:
    a, b, _ = cluster.three()
    proc, _, err = cluster.spawn(
        "subscribe", "--group", "w", "tasks", "--node", b.api, name="doomed"
    )
    wait_for(lambda: "subscribed" in err.read_text(), 10, "the member to die")
    with Client(b.api) as client, client.subscribe("tasks", group="w") as survivor:
        members_counted(a, "tasks", 2)
        assert b.status()["queue_members"] == {"w on tasks": 2}
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        with Client(a.api) as publisher:
            for i in range(20):
                publisher.publish("tasks", b"t%d" % i)
        assert drain(survivor) == [b"t%d" % i for i in range(20)]
    wait_for(lambda: b.status()["queue_members"] == {}, 10, "the members to be gone")
    assert b.counters()["queue_undelivered"] == 0


def test_members_join_again_after_their_node_restarts(cluster: Cluster) -> None:
    a = cluster.start("A")
    b = cluster.start("B", seeds=[a])
    cluster.wait_mesh()
    with Client(b.api, timeout=30) as client, client.subscribe("restarts", group="w") as member:
        members_counted(a, "restarts", 1)
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait(5)
        began = time.monotonic()
        b = cluster.start("B", seeds=[a], same_as=b)
        members_counted(a, "restarts", 1, reading=member)  # it joins again while it waits
        assert time.monotonic() - began < 15
        with Client(a.api) as publisher:
            publisher.publish("restarts", b"after")
        assert member.recv(10).data == b"after"


def test_the_async_client_joins_queue_groups_too(cluster: Cluster) -> None:
    a, b, _ = cluster.three()

    async def share() -> list[bytes]:
        async with AsyncClient(b.api) as client:
            member = await client.subscribe("work.", prefix=True, group="w")
            members_counted(a, "work.one", 1)
            with Client(a.api) as publisher:
                for i in range(5):
                    publisher.publish(f"work.{i}", b"%d" % i)
            got = [(await asyncio.wait_for(member.recv(), 10)).data for _ in range(5)]
            member.close()
            return got

    assert asyncio.run(share()) == [b"0", b"1", b"2", b"3", b"4"]


def test_bad_queue_arguments_are_refused_before_anything_is_sent(cluster: Cluster) -> None:
    a = cluster.start("A")
    since = cluster.run("subscribe", "--group", "w", "--since", "0", "t", "--node", a.api)
    assert since.returncode == 2 and "--since" in since.stderr
    name = cluster.run("subscribe", "--group", "bad\tname", "t", "--node", a.api)
    assert name.returncode == 2 and "control character" in name.stderr
    long = cluster.run("subscribe", "--group", "w" * 64, "t" * 200, "--node", a.api)
    assert long.returncode == 1 and "together" in long.stderr
    with Client(a.api) as client, pytest.raises(ValueError, match="since"):
        client.subscribe("t", group="w", since=3)
    assert a.counters()["queue_delivered"] == 0 and a.status()["errors"] == {}
