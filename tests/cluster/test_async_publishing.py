"""``AsyncClient.publish_many`` and ``publish_stream`` against real nodes."""

from __future__ import annotations

import asyncio

import pytest

from tests.cluster.harness import Cluster
from zdps import AsyncClient, AsyncSubscription, Message, PublishError, PublishResult

pytestmark = pytest.mark.timeout(60)


async def received(subscription: AsyncSubscription, n: int, timeout: float) -> list[Message]:
    """The next ``n`` deliveries, within ``timeout`` seconds in all."""

    async def take() -> list[Message]:
        got = []
        while len(got) < n:
            item = await subscription.recv()
            assert isinstance(item, Message), item  # no gap, no end
            got.append(item)
        return got

    return await asyncio.wait_for(take(), timeout)


def test_publish_many_yields_every_ack_in_order_and_delivers(cluster: Cluster) -> None:
    a = cluster.start("A")
    b = cluster.start("B", seeds=[a])
    cluster.wait_mesh()

    async def scenario() -> None:
        async with AsyncClient(a.api) as publisher, AsyncClient(b.api) as subscriber:
            subscription = await subscriber.subscribe("many")
            try:
                messages = (("many", f"m{i}") for i in range(300))
                outcomes = [o async for o in publisher.publish_many(messages, window=16, batch=4)]
                assert all(isinstance(o, PublishResult) for o in outcomes)
                assert [o.seq for o in outcomes] == list(range(1, 301))  # one topic: in order
                assert {o.subscribers for o in outcomes} == {1}
                got = await received(subscription, 300, 10)
                assert [m.data for m in got] == [b"m%d" % i for i in range(300)]
                none = publisher.publish_many((("many", b"x") for _ in range(50)), ack=False)
                assert [o async for o in none] == []
                assert [m.seq for m in await received(subscription, 50, 10)] == list(
                    range(301, 351)
                )
            finally:
                subscription.close()

    asyncio.run(scenario())


def test_publish_many_yields_refusals_without_stopping(cluster: Cluster) -> None:
    a = cluster.start("A", max_payload=100)

    async def scenario() -> None:
        async with AsyncClient(a.api) as client:
            messages = [("ok", b"x"), ("ok", b"y" * 101), ("ok", b"z")]
            outcomes = [o async for o in client.publish_many(messages, batch=3)]
            refused = [o for o in outcomes if isinstance(o, PublishError)]
            assert [o.code for o in refused] == ["too_large"]
            assert sorted(o.seq for o in outcomes if isinstance(o, PublishResult)) == [1, 2]

    asyncio.run(scenario())


@pytest.mark.parametrize("ack", ["owner", "replicated"])
def test_publish_stream_counts_every_ack_and_delivers(cluster: Cluster, ack: str) -> None:
    a = cluster.start("A")
    b = cluster.start("B", seeds=[a])
    cluster.wait_mesh()
    count = 5000

    async def scenario() -> None:
        async with AsyncClient(a.api) as publisher, AsyncClient(b.api) as subscriber:
            subscription = await subscriber.subscribe("stream")
            try:
                messages = (("stream", b"%d" % i) for i in range(count))
                result = await publisher.publish_stream(messages, window=1000, batch=64, ack=ack)
                assert (result.acked, result.failures) == (count, [])
                got = await received(subscription, count, 20)
                assert [m.seq for m in got] == list(range(1, count + 1))
                assert got[-1].data == b"%d" % (count - 1)
            finally:
                subscription.close()

    asyncio.run(scenario())
