"""The CLI as operators type it: --node, --timeout and --json before the command or
its group, whole files as one message, and payloads and topics with control bytes."""

from __future__ import annotations

import json

import pytest

from tests.cluster.harness import Cluster, free_port, wait_for
from zdps import Client, PublishError
from zdps.wire import E_INVALID_TOPIC

pytestmark = pytest.mark.timeout(60)


def dead() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def test_node_and_json_before_the_command(cluster: Cluster, monkeypatch) -> None:
    a = cluster.start("A")
    monkeypatch.setenv("ZDPS_NODE", dead())  # a flag before the command beats the variable
    status = cluster.run("--node", a.api, "--json", "status")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["node"] == "A"
    created = cluster.run("topic", "--node", a.api, "create", "g", "--history", "5", "--ttl", "60")
    assert created.returncode == 0, created.stderr
    published = cluster.run("--node", a.api, "--timeout", "5", "publish", "g", "one")
    assert published.returncode == 0 and published.stdout.startswith("seq=1"), published.stderr
    members = cluster.run("--node", a.api, "--json", "members", "g")
    assert json.loads(members.stdout)["owner"] == "A", members.stderr
    replay = cluster.run(
        "--json", "--node", a.api, "subscribe", "g", "--since", "1", "--count", "1"
    )
    assert json.loads(replay.stdout)["data"] == "one", replay.stderr
    deleted = cluster.run("--node", dead(), "topic", "--node", a.api, "delete", "g")
    assert deleted.returncode == 0, deleted.stderr  # the nearer flag wins
    own = cluster.run("--node", dead(), "status", "--node", a.api)
    assert own.returncode == 0, own.stderr  # the command's own flag wins


def test_flags_the_command_cannot_use_are_usage_errors(cluster: Cluster) -> None:
    for args, why in [
        (["--json", "publish", "t", "x"], "--json is for status, members, subscribe, bench"),
        (["--node", dead(), "start"], "--node and --timeout are for clients"),
        (["--node", "garbage", "status"], "--node 'garbage' is not an endpoint"),
        (["publish", "t", "x", "--file", "-"], "give MESSAGE or --file, not both"),
        (["publish", "t", "--file", "/nonexistent/zdps"], "No such file"),
    ]:
        done = cluster.run(*args)
        assert done.returncode in (1, 2) and why in done.stderr, (args, done.stderr)


def test_a_file_is_one_message_with_its_bytes(cluster: Cluster, tmp_path) -> None:
    a = cluster.start("A")
    blob = bytes(range(256)) * 40 + b"\n\r\nend"  # binary, line endings inside
    path = tmp_path / "blob.bin"
    path.write_bytes(blob)
    with Client(a.api) as client, client.subscribe("f") as sub:
        done = cluster.run("publish", "f", "--file", str(path), "--node", a.api)
        assert done.returncode == 0 and done.stdout.startswith("seq=1"), done.stderr
        piped = cluster.run("publish", "f", "--file", "-", "--node", a.api, input="a\nb\n")
        assert piped.returncode == 0 and piped.stdout.startswith("seq=2"), piped.stderr
        got = [sub.recv(timeout=5), sub.recv(timeout=5)]
    assert [m.data for m in got] == [blob, b"a\nb\n"]


def test_topics_with_control_characters_are_refused(cluster: Cluster) -> None:
    a = cluster.start("A")
    for topic in ["a\tb", "two\nlines", "bell\x07"]:
        done = cluster.run("publish", topic, "x", "--node", a.api)
        assert done.returncode == 2 and "control character" in done.stderr, done.stderr
    with Client(a.api) as client, pytest.raises(PublishError) as refused:
        client.publish("a\tb", b"x")  # the node refuses them, whoever sends them
    assert refused.value.code == E_INVALID_TOPIC


def test_plain_subscribe_escapes_control_bytes(cluster: Cluster) -> None:
    a = cluster.start("A")
    proc, out, err = cluster.spawn("subscribe", "esc", "--count", "2", "--node", a.api, name="esc")
    wait_for(lambda: "subscribed esc" in err.read_text(), 10, "subscriber")
    with Client(a.api) as client:
        client.publish("esc", b"tab\there\nnewline \\n")
        client.publish("esc", b"\x1b[31mred\xff")
    assert proc.wait(timeout=10) == 0, err.read_text()
    assert out.read_text() == "tab\\there\\nnewline \\\\n\n\\x1b[31mred\\xff\n"
