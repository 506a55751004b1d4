"""Durable consumers through real daemons (docs/PROTOCOL.md §8.6): a work queue shared by
members on several nodes through the CLI and the Python client, every message acked once;
a member that dies without acking has its messages go to the others, flagged; the owner
that dies is succeeded by a replica, and nothing acknowledged at ``replicated`` is lost."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest

from tests.cluster.harness import Cluster, NodeProc, wait_for
from zdps import AsyncClient, Client
from zdps.core.ring import HashRing

pytestmark = pytest.mark.timeout(120)


def owned_by(owner: str, prefix: str = "work-") -> str:
    ring = HashRing(["A", "B", "C"])
    return next(t for i in range(10_000) if ring.owner(t := f"{prefix}{i}") == owner)


def members_known(node: NodeProc, topic: str, name: str, count: int) -> None:
    def known() -> bool:
        with node.client() as client:
            info = client.request("consumer_info", topic=topic, name=name)
        return sum(info["members"].values()) == count

    wait_for(known, 10, f"{count} members of {name}")


def publish(node: NodeProc, topic: str, payloads: list[bytes]) -> None:
    with node.client(timeout=30) as client:
        for payload in payloads:
            client.publish(topic, payload, ack="replicated")


def test_a_work_queue_shared_by_cli_and_python_members_acks_each_message_once(
    cluster: Cluster,
) -> None:
    a, b, c = cluster.three()
    topic = owned_by("A")
    created = cluster.run("consumer", "create", topic, "w", "--ack-wait", "5", "--node", b.api)
    assert created.returncode == 0, created.stderr
    assert cluster.run("consumer", "ls", topic, "--node", c.api).stdout == "w\n"
    proc, out, err = cluster.spawn("consume", "--json", topic, "w", "--node", c.api, name="cli")
    wait_for(lambda: "consuming w" in err.read_text(), 10, "the CLI member")
    with Client(b.api) as client, client.consume(topic, "w") as member:
        members_known(a, topic, "w", 2)
        sent = [b"job %d" % i for i in range(40)]
        publish(a, topic, sent)
        mine = []
        while (messages := member.recv_batch(1.0)) is not None:  # all here now
            mine += [m.data for m in messages]
            member.verdicts(messages)  # their acks in one frame
        wait_for(lambda: out.read_text().count("\n") >= 40 - len(mine), 10, "the CLI's share")
    theirs = [json.loads(line)["data"].encode() for line in out.read_text().splitlines()]
    assert sorted(mine + theirs) == sorted(sent) and mine and theirs
    info = json.loads(cluster.run("consumer", "info", "--json", topic, "w", "--node", a.api).stdout)
    assert info["pending"] == 0 and info["counts"]["acked"] == 40
    assert "redelivered" not in info["counts"]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == 0


def test_what_a_dead_member_did_not_ack_goes_to_another_flagged(cluster: Cluster) -> None:
    a, b, _ = cluster.three()
    topic = owned_by("B")
    with Client(a.api) as client:
        client.create_consumer(topic, "w", ack_wait=1.0)
    doomed, _, err = cluster.spawn("consume", "--count", "1000", topic, "w", "--node", b.api,
                                   name="doomed")  # fmt: skip
    wait_for(lambda: "consuming" in err.read_text(), 10, "the member to die")
    members_known(a, topic, "w", 1)
    doomed.send_signal(signal.SIGSTOP)  # it takes its messages and never acks them
    publish(a, topic, [b"a", b"b", b"c"])
    with Client(a.api) as client, client.consume(topic, "w") as survivor:
        got = {}
        deadline = time.monotonic() + 20
        while len(got) < 3 and time.monotonic() < deadline:
            message = survivor.recv(1.0)
            if message is not None:
                got[message.data] = message.deliveries
                message.ack()
    doomed.send_signal(signal.SIGKILL)
    assert set(got) == {b"a", b"b", b"c"}
    assert all(deliveries >= 2 for deliveries in got.values()), got  # went before: flagged


def test_a_replica_succeeds_the_owner_that_dies_and_nothing_replicated_is_lost(
    cluster: Cluster,
) -> None:
    a, b, c = cluster.three()
    topic = owned_by("B")
    with Client(a.api) as client:
        client.create_consumer(topic, "w", ack_wait=2.0)
    with Client(c.api, timeout=30) as client, client.consume(topic, "w") as member:
        members_known(a, topic, "w", 1)
        publish(a, topic, [b"before %d" % i for i in range(20)])
        seen: dict[bytes, list[int]] = {}
        for _ in range(10):
            message = member.recv(5)
            seen.setdefault(message.data, []).append(message.deliveries)
            message.ack()
        # Killed at once: acks the replica has not heard of yet come back as flagged
        # redeliveries, which the checks below allow.
        b.proc.send_signal(signal.SIGKILL)
        wait_for(lambda: a.alive_peers() == {"C"}, 15, "B declared dead")
        publish(a, topic, [b"after %d" % i for i in range(5)])
        deadline = time.monotonic() + 30
        wanted = {b"before %d" % i for i in range(20)} | {b"after %d" % i for i in range(5)}
        while not wanted <= set(seen) and time.monotonic() < deadline:
            message = member.recv(1.0)
            if message is not None:
                seen.setdefault(message.data, []).append(message.deliveries)
                message.ack()
    assert wanted <= set(seen), sorted(wanted - set(seen))
    for payload, deliveries in seen.items():
        assert deliveries[0] == 1 or payload.startswith(b"before")
        assert all(d >= 2 for d in deliveries[1:])  # a duplicate is always flagged


def test_the_async_client_consumes_and_acks_too(cluster: Cluster) -> None:
    a, b, _ = cluster.three()
    topic = owned_by("C")

    async def work() -> list[tuple[bytes, int]]:
        async with AsyncClient(b.api) as client:
            await client.create_consumer(topic, "w", start="all", ack_wait=1.0)
            publish(a, topic, [b"x", b"y"])
            member = await client.consume(topic, "w")
            first = await asyncio.wait_for(member.recv(), 10)
            first.nak()  # goes again at once
            got = [(first.data, first.deliveries)]
            for _ in range(2):
                message = await asyncio.wait_for(member.recv(), 10)
                message.ack()
                got.append((message.data, message.deliveries))
            member.close()
            return got

    got = asyncio.run(work())
    assert sorted(got) == [(b"x", 1), (b"x", 2), (b"y", 1)]
    with Client(a.api) as client:
        info = client.request("consumer_info", topic=topic, name="w")
    assert info["pending"] == 0 and info["counts"]["acked"] == 2
