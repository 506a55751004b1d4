"""What a new user meets first: no node running, fire-and-forget publishes at exit,
and interrupted publishes, through the CLI and the Python clients."""

from __future__ import annotations

import asyncio
import logging
import platform
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from tests.cluster.harness import Cluster, NodeProc, free_port, wait_for, zdps_command
from zdps import AsyncClient, Client, RequestError

pytestmark = pytest.mark.timeout(60)

NO_NODE_COMMANDS = [
    ["status"],
    ["members", "t"],
    ["subscribe", "t"],
    ["topic", "create", "t", "--history", "5", "--ttl", "60"],
    ["topic", "delete", "t"],
    ["publish", "t", "x"],
    ["publish", "--no-ack", "t", "x"],
    ["bench", "--count", "10"],
]


@pytest.mark.parametrize("command", NO_NODE_COMMANDS, ids=" ".join)
def test_no_node_running_is_said_at_once(cluster: Cluster, command: list[str]) -> None:
    node = f"tcp://127.0.0.1:{free_port()}"
    began = time.monotonic()
    done = cluster.run(*command, "--node", node, input="a\nb\n")
    took = time.monotonic() - began
    assert done.returncode == 1, done.stdout
    assert done.stderr == f'Error: no zdps node at {node} — is "zdps start" running?\n'
    assert took < 5, f"{took:.1f} s: the 10 s timeout, not the connect check, answered"


def test_nothing_listening_is_known_well_under_a_second() -> None:
    """The connect check itself, without a CLI process's start-up (what the 5 s bound
    above also has to allow for on a loaded machine)."""
    with Client(f"tcp://127.0.0.1:{free_port()}", timeout=10) as client:
        began = time.monotonic()
        with pytest.raises(RequestError, match="no zdps node at") as raised:
            client.check_node()
        took = time.monotonic() - began
    assert raised.value.code == "unreachable" and took < 0.5, f"{took:.3f} s"


def test_stdin_publish_with_no_node_reads_nothing(cluster: Cluster) -> None:
    node = f"tcp://127.0.0.1:{free_port()}"
    done = cluster.run("publish", "t", "--node", node, input="".join(f"{i}\n" for i in range(1000)))
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr


def test_a_socket_of_another_kind_is_named() -> None:
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)  # a DEALER's handshake with a PUB fails
    try:
        port = pub.bind_to_random_port("tcp://127.0.0.1")
        with Client(f"tcp://127.0.0.1:{port}", timeout=5) as client:
            with pytest.raises(RequestError, match="refused the ZeroMQ handshake") as raised:
                client.check_node()
            assert raised.value.code == "unreachable"
    finally:
        pub.close(0)


def test_a_listener_that_never_answers_is_left_to_the_timeout() -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never speaks ZeroMQ
    try:
        with Client(f"tcp://127.0.0.1:{listener.getsockname()[1]}", timeout=0.5) as client:
            client.check_node(0.3)  # undecided: a stopped node looks the same
            with pytest.raises(RequestError, match="no answer"):
                client.status()
    finally:
        listener.close()


def test_check_node_passes_for_a_node(cluster: Cluster) -> None:
    a = cluster.start("A")
    with Client(a.api, timeout=5) as client:
        client.check_node()
        assert client.status()["node"] == "A"

    async def check() -> None:
        async with AsyncClient(a.api, timeout=5) as aclient:
            await aclient.check_node()
        async with AsyncClient(f"tcp://127.0.0.1:{free_port()}", timeout=5) as nobody:
            with pytest.raises(RequestError, match="no zdps node"):
                await nobody.check_node()

    asyncio.run(check())


# ---------------------------------------------------------------------- fire and forget


@pytest.fixture
def stopped() -> Iterator[list[NodeProc]]:
    """Nodes put here are sent SIGCONT at the end, whatever happened."""
    nodes: list[NodeProc] = []
    yield nodes
    for node in nodes:
        node.proc.send_signal(signal.SIGCONT)


def published(node: NodeProc) -> int:
    return node.counters()["published"]


def test_no_ack_publish_waits_for_a_node_that_is_briefly_not_reading(
    cluster: Cluster, stopped: list[NodeProc]
) -> None:
    a = cluster.start("A")
    before = published(a)
    pub = subprocess.Popen(
        [*zdps_command(), "publish", "--no-ack", "t", "--node", a.api],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stopped.append(a)
    a.proc.send_signal(signal.SIGSTOP)
    pub.stdin.write("".join(f"{i}\n" for i in range(1000)))
    pub.stdin.close()
    with pytest.raises(subprocess.TimeoutExpired):  # the fault: half a second unread,
        pub.wait(0.5)  # through which the publisher waits for the node, not exits
    a.proc.send_signal(signal.SIGCONT)
    assert pub.wait(30) == 0, pub.stderr.read()
    assert published(a) - before == 1000


def test_no_ack_publish_fails_when_the_node_never_reads_them(
    cluster: Cluster, stopped: list[NodeProc]
) -> None:
    a = cluster.start("A")
    stopped.append(a)
    a.proc.send_signal(signal.SIGSTOP)
    lines = "".join(f"{i}\n" for i in range(100))
    done = cluster.run("publish", "--no-ack", "--timeout", "1", "t", "--node", a.api, input=lines)
    assert done.returncode == 1
    assert "Error: 100 of 100 message(s) not confirmed as read by the node" in done.stderr


def test_no_ack_and_ack_replicated_contradict(cluster: Cluster) -> None:
    done = cluster.run("publish", "--no-ack", "--ack", "replicated", "t", "x")
    assert done.returncode == 2 and "--no-ack contradicts --ack replicated" in done.stderr


def test_client_close_waits_for_the_node_and_says_what_it_did_not_read(
    cluster: Cluster, stopped: list[NodeProc], caplog: pytest.LogCaptureFixture
) -> None:
    a = cluster.start("A")
    before = published(a)
    client = Client(a.api, timeout=5)
    client.info()  # connected
    stopped.append(a)
    a.proc.send_signal(signal.SIGSTOP)
    for i in range(10):
        client.publish("t", f"m{i}", ack=False)
    assert client.flush(0.3) == 10  # queued here, not read
    a.proc.send_signal(signal.SIGCONT)
    assert client.flush() == 0
    assert published(a) - before == 10
    a.proc.send_signal(signal.SIGSTOP)
    outcomes = list(client.publish_many((("t", b"x") for _ in range(5)), ack=False))
    assert [o.code for o in outcomes] == ["timeout"] * 5  # after the client's 5 s
    client.publish("t", "y", ack=False)
    with caplog.at_level(logging.WARNING, logger="zdps.client"):
        assert client.close(linger=0.2) == 1
    assert "closing with 1 fire-and-forget publish(es)" in caplog.text


def test_async_client_close_waits_for_the_node(cluster: Cluster, stopped: list[NodeProc]) -> None:
    a = cluster.start("A")
    before = published(a)

    async def run() -> int:
        client = AsyncClient(a.api, timeout=5)
        await client.info()
        stopped.append(a)
        a.proc.send_signal(signal.SIGSTOP)
        for i in range(10):
            await client.publish("t", f"m{i}", ack=False)
        assert await client.flush(0.3) == 10
        a.proc.send_signal(signal.SIGCONT)
        return await client.close()

    assert asyncio.run(run()) == 0
    assert published(a) - before == 10


# ---------------------------------------------------------------------- interrupted


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_stdin_publish_says_how_far_it_got(
    cluster: Cluster, signum: signal.Signals
) -> None:
    a = cluster.start("A")
    pub = subprocess.Popen(
        [*zdps_command(), "publish", "t", "--node", a.api],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    pub.stdin.write("".join(f"{i}\n" for i in range(3)))
    pub.stdin.flush()
    wait_for(lambda: published(a) == 3, 10, "3 publishes")
    # It read the acks before it went back to waiting for stdin: it knows all 3 went.
    wait_for(lambda: reading_stdin(pub.pid), 10, "the publisher to wait for stdin again")
    pub.send_signal(signum)
    assert pub.wait(10) == 130
    said = re.search(
        r"interrupted: read (\d+) message\(s\): (\d+) acknowledged, 0 failed, "
        r"(\d+) not confirmed",
        pub.stderr.read(),
    )
    assert said, "no summary"
    assert list(map(int, said.groups())) == [3, 3, 0]  # read, acknowledged, not confirmed


READ = {"x86_64": 0, "aarch64": 63}[platform.machine()]  # the read(2) syscall's number


def reading_stdin(pid: int) -> bool:
    """The process's main thread is blocked in read(2) on fd 0 (/proc/PID/syscall)."""
    fields = Path(f"/proc/{pid}/syscall").read_text().split()
    return len(fields) > 1 and fields[0] == str(READ) and int(fields[1], 16) == 0
