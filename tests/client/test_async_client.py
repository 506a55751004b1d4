"""``AsyncClient`` against a scripted fake node: its reader, loops, close, watches, leaks."""

from __future__ import annotations

import asyncio
import time

import pytest
import zmq

from tests.client.fake_node import FakeNode, answer, free_port, garbage, wait_until
from zdps import AsyncClient, RequestError
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
            parse = client._proto.parse

            def broken(frame: bytes):
                client._proto.parse = parse  # once
                raise RuntimeError("reader bug")

            client._proto.parse = broken
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
