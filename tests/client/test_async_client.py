"""``AsyncClient`` against a scripted fake node: its reader, loops, close, watches, leaks,
and its windowed publishing (the same steps as ``Client``'s, awaited)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import zmq

from tests.client.fake_node import (
    FakeNode,
    answer,
    free_port,
    garbage,
    on_publish,
    pub_entries,
    pub_messages,
    wait_until,
)
from zdps import FLUSH, AsyncClient, PublishResult, RequestError, StreamResult
from zdps.client.protocol import DEFAULT_RCVHWM

pytestmark = pytest.mark.timeout(30)


def silent_on(op: str):
    """A handler that never answers ``op`` and answers everything else."""

    def handler(node: FakeNode, client: bytes, msg: list) -> None:
        if not (msg[1] == "req" and msg[3] == op):
            answer(node, client, msg)

    return handler


def test_a_client_serves_one_event_loop_after_another(node: FakeNode) -> None:
    client = AsyncClient(node.endpoint, timeout=3)
    assert asyncio.run(client.request("echo"))["op"] == "echo"
    assert asyncio.run(client.request("echo", n=2))["args"] == {"n": 2}

    async def watch_then_close() -> None:
        watch = client.watch("t")
        assert (await anext(watch))["owner"] == "fake"
        await watch.aclose()
        await client.close()

    asyncio.run(watch_then_close())


def test_bad_frames_do_not_stop_the_reader(node: FakeNode) -> None:
    def handler(node: FakeNode, client: bytes, msg: list) -> None:
        for frame in garbage():
            node.send_raw(client, frame)
        answer(node, client, msg)

    node.handler = handler

    async def scenario() -> None:
        async with AsyncClient(node.endpoint, timeout=3) as client:
            assert (await client.request("echo"))["op"] == "echo"
            assert (await client.request("echo"))["op"] == "echo"
            assert client.bad_frames == 4

    asyncio.run(scenario())


def test_a_dead_reader_fails_pending_requests_and_is_replaced(node: FakeNode) -> None:
    async def scenario() -> None:
        async with AsyncClient(node.endpoint, timeout=10) as client:
            absorb = client._session.absorb

            def broken(frame: bytes):
                client._session.absorb = absorb  # once
                raise RuntimeError("reader bug")

            client._session.absorb = broken
            began = time.monotonic()
            with pytest.raises(RequestError) as raised:
                await client.request("echo")
            assert raised.value.code == "closed" and time.monotonic() - began < 5
            assert (await client.request("echo"))["op"] == "echo"

    asyncio.run(scenario())


def test_close_fails_pending_requests_at_once(node: FakeNode) -> None:
    node.handler = silent_on("slow")

    async def scenario() -> None:
        client = AsyncClient(node.endpoint, timeout=20)
        pending = asyncio.ensure_future(client.request("slow"))
        await asyncio.sleep(0)  # let it send
        wait = asyncio.get_running_loop().run_in_executor(
            None, wait_until, lambda: node.requests("slow"), 5, "the request"
        )
        await wait
        began = time.monotonic()
        await client.close()
        with pytest.raises(RequestError) as raised:
            await pending
        assert raised.value.code == "closed" and time.monotonic() - began < 2

    asyncio.run(scenario())


def test_closing_a_watch_sends_unwatch(node: FakeNode) -> None:
    async def scenario() -> None:
        async with AsyncClient(node.endpoint, timeout=3) as client:
            watch = client.watch("t")
            await anext(watch)
            await watch.aclose()
            unwatch = await asyncio.get_running_loop().run_in_executor(
                None, wait_until, lambda: node.requests("unwatch"), 5, "unwatch"
            )
            assert unwatch[0][4] == {"ref": node.requests("watch")[0][2]}
            assert (await client.request("echo"))["op"] == "echo"

    asyncio.run(scenario())


def test_closing_the_client_ends_its_watches(node: FakeNode) -> None:
    async def scenario() -> None:
        client = AsyncClient(node.endpoint, timeout=3)
        watch = client.watch("t")
        await anext(watch)
        await client.close()
        await watch.aclose()

    asyncio.run(scenario())
    unwatch = wait_until(lambda: node.requests("unwatch"), 5, "unwatch")
    assert [u[4] for u in unwatch] == [{"ref": node.requests("watch")[0][2]}]


def test_sends_to_a_dead_node_time_out() -> None:
    async def scenario() -> None:
        async with AsyncClient(f"tcp://127.0.0.1:{free_port()}", timeout=0.3) as client:
            began = time.monotonic()
            with pytest.raises(RequestError):
                for _ in range(5000):
                    await client.publish("t", b"x", ack=False)
            with pytest.raises(RequestError):
                await client.status()
            assert time.monotonic() - began < 3

    asyncio.run(scenario())


class RecordingContext:
    def __init__(self, ctx: zmq.asyncio.Context) -> None:
        self.ctx = ctx
        self.made: list[zmq.Socket] = []

    def socket(self, kind: int) -> zmq.Socket:
        sock = self.ctx.socket(kind)
        self.made.append(sock)
        return sock


@pytest.mark.parametrize("failure", ["info", "connect"])
def test_subscribe_closes_its_sub_socket_when_it_fails(node: FakeNode, failure: str) -> None:
    def handler(node: FakeNode, client: bytes, msg: list) -> None:
        if failure == "info":
            node.send(client, "rep", msg[2], False, {"code": "timeout", "message": "no"})
        else:
            node.send(client, "rep", msg[2], True, {"endpoints": {"pub": "garbage"}})

    node.handler = handler

    async def scenario() -> None:
        async with AsyncClient(node.endpoint, timeout=3) as client:
            recorder = client._ctx = RecordingContext(client._ctx)
            with pytest.raises((RequestError, zmq.ZMQError)):
                await client.subscribe("t")
            assert [s.closed for s in recorder.made] == [True]

    asyncio.run(scenario())


def test_subscriber_queue_is_bounded(node: FakeNode) -> None:
    async def scenario() -> None:
        async with AsyncClient(node.endpoint, timeout=3) as client:
            subscription = await client.subscribe("t")
            assert subscription._sock.getsockopt(zmq.RCVHWM) == DEFAULT_RCVHWM
            subscription.close()
            subscription = await client.subscribe("t", rcvhwm=7)
            assert subscription._sock.getsockopt(zmq.RCVHWM) == 7
            subscription.close()

    asyncio.run(scenario())


# ---------------------------------------------------------------------- publishing


class Outstanding:
    """Publishes the fake node holds unacknowledged, and the most it ever held."""

    def __init__(self) -> None:
        self.refs: list[int] = []
        self.most = 0

    def add(self, msg: list) -> None:
        """The publishes of a ``pub`` frame, each message of a batch with its own ref."""
        self.refs += [ref for ref, _topic, _payload in pub_messages(msg)]
        self.most = max(self.most, len(self.refs))

    def ack_all(self, node: FakeNode, client: bytes) -> None:
        refs, self.refs = self.refs, []
        node.send(client, "ack", [[ref, ref * 10, 1, 0, 1] for ref in refs])


def counted(n: int, consumed: list[int]) -> Iterator[tuple[str, bytes]]:
    for i in range(n):
        consumed.append(i)
        yield "t", b"m%d" % i


def test_publish_many_keeps_its_window_and_yields_each_outcome(node: FakeNode) -> None:
    window = 4
    held = Outstanding()

    @on_publish
    def handler(node: FakeNode, client: bytes, msg: list) -> None:
        held.add(msg)
        if len(held.refs) >= window:
            node.send(client, "event", 999, {"nodes": {}})  # settles nothing
            node.later(0.05, lambda: held.ack_all(node, client))

    node.handler = handler

    async def scenario() -> list:
        async with AsyncClient(node.endpoint, timeout=5) as client:
            outcomes = [o async for o in client.publish_many(counted(12, []), window=window)]
            assert client._session.awaited == {}
            return outcomes

    outcomes = asyncio.run(scenario())
    assert held.most == window
    assert [o.seq for o in outcomes] == [10 * ref for ref in range(1, 13)]


@pytest.mark.parametrize("ack", [True, False])
def test_publish_many_to_a_dead_node_reports_timeouts_and_stops(ack: bool) -> None:
    consumed: list[int] = []

    async def scenario() -> list:
        async with AsyncClient(f"tcp://127.0.0.1:{free_port()}", timeout=0.5) as client:
            return [o async for o in client.publish_many(counted(1500, consumed), ack=ack)]

    began = time.monotonic()
    outcomes = asyncio.run(scenario())
    assert time.monotonic() - began < 3
    assert outcomes and {getattr(o, "code", None) for o in outcomes} == {"timeout"}
    assert len(consumed) < 1500
    if ack:
        assert len(outcomes) == len(consumed)


def test_closing_publish_many_early_forgets_its_refs(node: FakeNode) -> None:
    async def scenario() -> None:
        async with AsyncClient(node.endpoint, timeout=3) as client:
            outcomes = client.publish_many(("t", b"x") for _ in range(10))
            assert isinstance(await anext(outcomes), PublishResult)
            await outcomes.aclose()
            assert client._session.awaited == {}

    asyncio.run(scenario())


def test_publish_stream_window_late_acks_and_nacks(node: FakeNode) -> None:
    window = 7
    held = Outstanding()

    @on_publish
    def handler(node: FakeNode, client: bytes, msg: list) -> None:
        held.add(msg)
        if len(held.refs) >= window:

            def settle() -> None:
                refs, held.refs = held.refs, []
                node.send(client, "ack", [[refs[0], 1, 1, 0, len(refs) - 1]])
                node.send(client, "nack", [[refs[-1], "too_large", "no", 1]])

            node.later(0.05, settle)
        elif pub_messages(msg)[-1][2] == b"last":
            node.later(0.05, lambda: held.ack_all(node, client))

    node.handler = handler
    messages = [("t", b"x")] * 20 + [("t", b"last")]

    async def scenario() -> StreamResult:
        async with AsyncClient(node.endpoint, timeout=5) as client:
            return await client.publish_stream(iter(messages), window=window, batch=3)

    result = asyncio.run(scenario())
    assert held.most <= window and result.done == 21
    assert [f.code for f in result.failures] == ["too_large"] * len(result.failures)
    assert result.acked == 21 - len(result.failures) and 1 <= len(result.failures) <= 3


def test_publish_stream_to_a_dead_node_stops_within_the_timeout() -> None:
    consumed: list[int] = []

    async def scenario() -> StreamResult:
        async with AsyncClient(f"tcp://127.0.0.1:{free_port()}", timeout=0.5) as client:
            return await client.publish_stream(counted(100_000, consumed), window=2000, batch=100)

    began = time.monotonic()
    result = asyncio.run(scenario())
    assert time.monotonic() - began < 3
    assert result.acked == 0 and result.done == len(consumed) < 100_000
    assert {f.code for f in result.failures} == {"timeout"}


def test_a_stream_and_other_operations_share_the_client(node: FakeNode) -> None:
    """Refs of concurrent publishes fall between the stream's frames: each gets its ack."""

    async def scenario() -> None:
        async with AsyncClient(node.endpoint, timeout=5) as client:
            stream = client.publish_stream(counted(3000, []), window=500, batch=50)
            singles = [client.publish("u", b"y") for _ in range(20)]
            result, *acks = await asyncio.gather(stream, *singles, client.request("echo"))
            assert (result.acked, result.failures) == (3000, [])
            assert all(isinstance(a, PublishResult) for a in acks[:-1])
            assert acks[-1]["op"] == "echo" and client._session.awaited == {}

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_runs_of_a_topic_travel_as_batches_and_a_flush_sends_at_once(node: FakeNode) -> None:
    items = [("t", b"a"), ("t", b"b"), FLUSH, ("t", b"c"), ("u", b"d"), ("u", b"e")]

    async def scenario() -> tuple[list, StreamResult]:
        async with AsyncClient(node.endpoint, timeout=5) as client:
            outcomes = [o async for o in client.publish_many(iter(items), batch=100)]
            return outcomes, await client.publish_stream(iter(items), batch=100)

    outcomes, result = asyncio.run(scenario())
    assert [o.seq for o in outcomes] == [1, 2, 3, 4, 5]
    assert (result.acked, result.failures) == (5, [])
    frames = [
        [(e.ref, e.topic, e.payloads) for e in pub_entries(f)]
        for f in node.received
        if f[1] == "pub"
    ]
    assert len(frames) == 4  # two for each call: at the FLUSH, and at the end
    for at in (0, 2):
        start = frames[at][0][0]
        assert frames[at : at + 2] == [
            [(start, "t", [b"a", b"b"])],
            [(start + 2, "t", [b"c"]), (start + 3, "u", [b"d", b"e"])],
        ]
