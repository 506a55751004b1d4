"""The Python client libraries against a real two-node cluster."""

from __future__ import annotations

import asyncio

import pytest

from tests.cluster.harness import Cluster, wait_for
from zdps import AsyncClient, Client

pytestmark = pytest.mark.timeout(60)


def test_async_client_publish_subscribe_members_watch(cluster: Cluster) -> None:
    a = cluster.start("A")
    b = cluster.start("B", seeds=[a])
    cluster.wait_mesh()

    async def scenario() -> None:
        async with AsyncClient(a.api) as pub_client, AsyncClient(b.api) as sub_client:
            watch = pub_client.watch("async-topic")
            first = await anext(watch)
            assert first["nodes"] == {}
            subscription = await sub_client.subscribe("async-topic")
            changed = await asyncio.wait_for(anext(watch), 5)
            assert changed["nodes"] == {"B": 1}
            assert changed["event"] == {
                "kind": "join",
                "group": "async-topic",
                "prefix": False,
                "node": "B",
                "count": 1,
            }
            results = [await pub_client.publish("async-topic", f"m{i}") for i in range(5)]
            assert [r.seq for r in results] == [1, 2, 3, 4, 5]
            got = [await asyncio.wait_for(subscription.recv(), 5) for _ in range(5)]
            assert [m.data for m in got] == [b"m0", b"m1", b"m2", b"m3", b"m4"]
            assert (await sub_client.members("async-topic"))["nodes"] == {"B": 1}
            await pub_client.delete_topic("async-topic")
            assert await asyncio.wait_for(subscription.recv(), 5) is None
            assert subscription.ended
            subscription.close()
            await watch.aclose()

    asyncio.run(scenario())


def test_subscribe_is_live_at_the_owner_when_it_returns(cluster: Cluster) -> None:
    """No waiting after subscribe(): the very next publish, from another node, arrives."""
    a = cluster.start("A")
    b = cluster.start("B", seeds=[a])
    c = cluster.start("C", seeds=[a])
    cluster.wait_mesh()
    with Client(a.api) as publisher, Client(c.api) as subscriber:
        for i in range(30):
            topic = f"race-{i}"
            with subscriber.subscribe(topic) as subscription:
                assert publisher.publish(topic, b"first").subscribers == 1
                message = subscription.recv(5)
                assert message is not None and (message.data, message.seq) == (b"first", 1)
    wait_for(lambda: c.status()["groups"]["local"] == 0, 5, "subscriptions to be dropped")
    assert b.proc.poll() is None


def test_closing_a_watch_ends_it_at_the_node(cluster: Cluster) -> None:
    """The node answers ``unwatch`` with false once the closed generator has ended it."""
    a = cluster.start("A")
    with Client(a.api) as client:
        watch_ref = client._session.next_ref
        watch = client.watch("w")
        assert next(watch)["nodes"] == {}
        watch.close()
        assert client.request("unwatch", ref=watch_ref) is False
        watch_ref = client._session.next_ref
        watch = client.watch("w")
        next(watch)
        assert client.request("unwatch", ref=watch_ref) is True  # live until closed

    async def scenario() -> None:
        async with AsyncClient(a.api) as client:
            watch_ref = client._session.next_ref
            watch = client.watch("w")
            await anext(watch)
            await watch.aclose()
            assert await client.request("unwatch", ref=watch_ref) is False

    asyncio.run(scenario())
