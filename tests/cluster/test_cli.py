"""CLI behaviours not covered elsewhere: members --watch, SIGINT, raw bytes, clean failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests.cluster.harness import Cluster, free_port, wait_for, zdps_command
from zdps import Client

pytestmark = pytest.mark.timeout(60)


def test_members_watch_prints_every_change(cluster: Cluster) -> None:
    a = cluster.start("A")
    b = cluster.start("B", seeds=[a])
    cluster.wait_mesh()
    proc, out, _ = cluster.spawn(
        "members", "--json", "--watch", "watched", "--node", a.api, name="watch"
    )
    wait_for(lambda: out.read_text().count("\n") >= 1, 10, "the first view")
    with Client(b.api) as client, client.subscribe("watched"):
        wait_for(lambda: out.read_text().count("\n") >= 2, 10, "the join event")
    wait_for(lambda: out.read_text().count("\n") >= 3, 10, "the leave event")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == 0
    views = [json.loads(line) for line in out.read_text().splitlines()]
    assert views[0]["nodes"] == {} and "event" not in views[0]
    assert views[1]["nodes"] == {"B": 1} and views[1]["event"]["kind"] == "join"
    assert views[2]["nodes"] == {} and views[2]["event"]["kind"] == "leave"
    assert {v["owner"] for v in views} <= {"A", "B"}


def test_sigint_leaves_gracefully_like_sigterm(cluster: Cluster) -> None:
    a = cluster.start("A")
    b = cluster.start("B", seeds=[a])
    cluster.wait_mesh()
    b.proc.send_signal(signal.SIGINT)
    wait_for(lambda: a.alive_peers() == set(), 1.0, "A to drop B")
    assert b.exit_code(5) == 0
    assert "peer_down node=B reason=left" in a.logs()


def test_json_output_carries_base64_for_binary_payloads(cluster: Cluster) -> None:
    a = cluster.start("A")
    proc, out, err = cluster.spawn(
        "subscribe", "--json", "--count", "2", "bin", "--node", a.api, name="bin"
    )
    wait_for(lambda: "subscribed bin" in err.read_text(), 10, "subscriber")
    with Client(a.api) as client:
        client.publish("bin", b"\xff\xfe raw")
        client.publish("bin", "plain ✓")
    assert proc.wait(10) == 0
    first, second = (json.loads(line) for line in out.read_text().splitlines())
    assert first["data_b64"] == "//4gcmF3" and first["data"] == "\\xff\\xfe raw"
    assert second == {"topic": "bin", "seq": 2, "epoch": first["epoch"], "data": "plain ✓"}


# ---------------------------------------------------------------------- failures, cleanly


def run_all(commands: list[tuple[list[str], bytes | None, dict[str, str]]]) -> list[tuple]:
    """Run CLI commands side by side: [(returncode, stdout, stderr, seconds)]."""
    began = time.monotonic()
    procs = []
    for args, stdin, env in commands:
        proc = subprocess.Popen(
            [*zdps_command(), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **env},
        )
        procs.append((proc, stdin))
    results = []
    for proc, stdin in procs:
        out, err = proc.communicate(stdin, timeout=30)
        seconds = time.monotonic() - began
        results.append((proc.returncode, out, err.decode(errors="replace"), seconds))
    return results


def dead_node() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def test_client_commands_refuse_a_bad_node_in_one_line() -> None:
    commands = [
        ["status"],
        ["members", "x"],
        ["members", "--watch", "x"],
        ["publish", "t", "m"],
        ["subscribe", "t"],
        ["topic", "delete", "t"],
    ]
    runs = [([*c, "--node", "garbage"], None, {}) for c in commands]
    runs += [
        (["status", "--node", "tcp://127.0.0.1:99999"], None, {}),
        (["status", "--node", "tcp://*:7711"], None, {}),  # well formed, but not dialable
        (["status"], None, {"ZDPS_NODE": "nonsense"}),
    ]
    for (args, _, _), (code, _out, err, _) in zip(runs, run_all(runs), strict=True):
        assert code != 0, args
        assert err.startswith("Error: ") and err.count("\n") == 1, (args, err)


def test_commands_against_a_dead_node_end_within_their_timeout() -> None:
    lines = b"".join(b"%d\n" % i for i in range(1500))
    runs = [
        (["publish", "t", "--node", dead_node(), "--timeout", "1"], lines, {}),
        (["publish", "t", "--no-ack", "--node", dead_node(), "--timeout", "1"], lines, {}),
        (["members", "--watch", "x", "--node", dead_node(), "--timeout", "1"], None, {}),
        (["status", "--node", dead_node(), "--timeout", "1"], None, {}),
    ]
    results = run_all(runs)
    for (args, _, _), (code, _out, err, seconds) in zip(runs, results, strict=True):
        assert code != 0 and seconds < 8, (args, code, seconds)
        assert "Traceback" not in err and err.splitlines()[-1].startswith("Error: "), (args, err)
    publish_err = results[0][2]
    assert "no zdps node at" in publish_err and publish_err.count("\n") <= 13


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_subscribe_ends_quietly_on_sigint_or_sigterm(
    cluster: Cluster, signum: signal.Signals
) -> None:
    a = cluster.start("A")
    proc, out, err = cluster.spawn("subscribe", "intr", "--node", a.api, name="intr")
    wait_for(lambda: "subscribed intr" in err.read_text(), 10, "subscriber")
    with Client(a.api) as client:
        client.publish("intr", b"one")
        client.publish("intr", b"two")
    wait_for(lambda: out.read_text() == "one\ntwo\n", 10, "both messages")
    proc.send_signal(signum)
    assert proc.wait(10) == 0
    assert err.read_text() == "subscribed intr\n"


def test_subscribe_into_a_closed_pipe_ends_quietly(cluster: Cluster) -> None:
    a = cluster.start("A")
    err = cluster.workdir / "pipe.err"
    with err.open("wb") as err_file:
        proc = subprocess.Popen(
            [*zdps_command(), "subscribe", "pipe", "--node", a.api],
            stdout=subprocess.PIPE,
            stderr=err_file,
        )
    cluster.procs.append(proc)
    wait_for(lambda: "subscribed pipe" in err.read_text(), 10, "subscriber")
    with Client(a.api) as client:
        client.publish("pipe", b"first")
        assert proc.stdout.readline() == b"first\n"
        proc.stdout.close()  # like `| head -1` exiting
        wait_for(
            lambda: client.publish("pipe", b"more") and proc.poll() is not None,
            10,
            "the subscriber to notice",
        )
    assert proc.returncode == 0
    assert err.read_text() == "subscribed pipe\n"


def test_publish_sends_stdin_and_arguments_as_raw_bytes(cluster: Cluster) -> None:
    a = cluster.start("A")
    with Client(a.api) as client, client.subscribe("raw") as subscription:
        stdin = b"\xff\xfe\r\nplain\n\na\rb\nlast\r"
        done = subprocess.run(
            [*zdps_command(), "publish", "raw", "--node", a.api],
            input=stdin,
            capture_output=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        done = subprocess.run(
            [*zdps_command(), "publish", "raw", b"\xfe\xff arg", "--node", a.api],
            capture_output=True,
            timeout=30,
        )
        assert done.returncode == 0 and done.stdout == b"seq=6 nodes=1 subscribers=1\n"
        got = [subscription.recv(5) for _ in range(6)]
    expected = [b"\xff\xfe", b"plain", b"", b"a\rb", b"last\r", b"\xfe\xff arg"]
    assert [m.data for m in got] == expected


def test_commands_stop_on_sigint_even_when_started_with_it_ignored(cluster: Cluster) -> None:
    """`bash .ci/run &` runs the suite with SIGINT ignored, and children inherit that:
    the harness gives a command its default back, and the daemon handles SIGINT itself."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        a = cluster.start("A")
        proc, _, err = cluster.spawn("subscribe", "bg", "--node", a.api, name="bg")
    finally:
        signal.signal(signal.SIGINT, previous)
    wait_for(lambda: "subscribed bg" in err.read_text(), 10, "subscriber")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == 0
    a.proc.send_signal(signal.SIGINT)
    assert a.exit_code(10) == 0
    assert "leaving" in a.logs()
