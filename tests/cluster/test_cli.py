"""CLI behaviours not covered elsewhere: members --watch, SIGINT, non-UTF-8 payloads."""

from __future__ import annotations

import json
import signal

import pytest

from tests.cluster.harness import Cluster, wait_for
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
    assert b.proc.wait(5) == 0
    assert "peer B down (left)" in a.logs()


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
