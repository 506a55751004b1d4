"""The whole data path through real daemons: owner routing, one copy per node, order."""

from __future__ import annotations

import json

import msgpack
import pytest
import zmq

from tests.cluster.harness import Cluster, NodeProc, wait_for
from zdps.core.ring import HashRing

pytestmark = pytest.mark.timeout(120)

MESSAGES = 1000


def topic_owned_by(owner: str, nodes: list[str], prefix: str = "orders-") -> str:
    ring = HashRing(nodes)
    return next(t for i in range(10_000) if ring.owner(t := f"{prefix}{i}") == owner)


def wait_subscribed(err_path, timeout: float = 15) -> None:
    wait_for(lambda: "subscribed" in err_path.read_text(), timeout, f"{err_path.name} to go live")


def raw_sub(node: NodeProc, *subscriptions: bytes) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.connect(node.pub)
    for subscription in subscriptions:
        sock.subscribe(subscription)
    return sock


def recv_all(sock: zmq.Socket, count: int, timeout_ms: int = 10_000) -> list[list[bytes]]:
    got = []
    while len(got) < count and sock.poll(timeout_ms):
        got.append(sock.recv_multipart())
    return got


def four_nodes(cluster: Cluster) -> tuple[NodeProc, NodeProc, NodeProc, NodeProc]:
    a = cluster.start("A")
    b = cluster.start("B", seeds=[a])
    c = cluster.start("C", seeds=[a])
    d = cluster.start("D", seeds=[b])
    cluster.wait_mesh()
    return a, b, c, d


def test_owner_fanout_one_copy_per_node_in_order(cluster: Cluster) -> None:
    a, b, c, d = four_nodes(cluster)
    topic = topic_owned_by("B", ["A", "B", "C", "D"])
    assert a.members(topic)["owner"] == "B"

    sub_b, out_b, err_b = cluster.spawn(
        "subscribe", "--json", "--count", str(MESSAGES), topic, "--node", b.api, name="sub-b"
    )
    sub_c, out_c, err_c = cluster.spawn(
        "subscribe", "--json", "--count", str(MESSAGES), topic, "--node", c.api, name="sub-c"
    )
    wait_subscribed(err_b)
    wait_subscribed(err_c)
    raw = raw_sub(c, topic.encode() + b"\x00")
    # The raw SUB has no confirmation handshake: wait until the owner counts it.
    wait_for(
        lambda: b.members(topic)["nodes"] == {"B": 1, "C": 2}, 10, "owner to see 3 subscribers"
    )

    lines = "".join(f"message {i}\n" for i in range(MESSAGES))
    published = cluster.run("publish", topic, "--node", a.api, input=lines, timeout=60)
    assert published.returncode == 0, published.stderr

    for proc, out in ((sub_b, out_b), (sub_c, out_c)):
        assert proc.wait(30) == 0
        received = [json.loads(line) for line in out.read_text().splitlines()]
        assert [m["seq"] for m in received] == list(range(1, MESSAGES + 1))
        assert [m["data"] for m in received] == [f"message {i}" for i in range(MESSAGES)]
        assert {m["topic"] for m in received} == {topic}
        assert len({m["epoch"] for m in received}) == 1

    frames = recv_all(raw, MESSAGES)
    raw.close()
    assert len(frames) == MESSAGES
    headers = [msgpack.unpackb(f[1]) for f in frames]
    assert [h["seq"] for h in headers] == list(range(1, MESSAGES + 1))
    assert all(f[0] == topic.encode() + b"\x00" for f in frames)
    assert [f[2] for f in frames] == [f"message {i}".encode() for i in range(MESSAGES)]

    counters = {n.node_id: n.counters() for n in (a, b, c, d)}
    assert counters["A"]["routed_to_owner"] == MESSAGES
    assert counters["B"]["owned_published"] == MESSAGES
    assert counters["B"]["fanout_sent"] == MESSAGES  # to C only: two subscribers, one copy
    peers_of_b = {p["node"]: p["fanout_sent"] for p in b.status()["peers"]}
    assert peers_of_b == {"A": 0, "C": MESSAGES, "D": 0}
    assert counters["C"]["fanout_received"] == MESSAGES
    assert counters["C"]["delivered"] == MESSAGES
    assert counters["B"]["delivered"] == MESSAGES
    assert counters["A"]["fanout_received"] == 0
    assert counters["D"]["fanout_received"] == 0
    assert counters["A"]["delivered"] == counters["D"]["delivered"] == 0


def test_prefix_subscriber_gets_every_topic_under_it(cluster: Cluster) -> None:
    a = cluster.start("A")
    b = cluster.start("B", seeds=[a])
    c = cluster.start("C", seeds=[a])
    cluster.wait_mesh()
    proc, out, err = cluster.spawn(
        "subscribe", "--json", "--count", "6", "--prefix", "news.", "--node", c.api, name="prefix"
    )
    wait_subscribed(err)
    topics = ["news.a", "news.b", "news.c"]
    for topic in ["sport.x", *topics, *topics]:
        result = cluster.run("publish", topic, f"on {topic}", "--node", b.api)
        assert result.returncode == 0, result.stderr
    assert proc.wait(20) == 0
    received = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted((m["topic"], m["seq"]) for m in received) == sorted(
        (t, s) for t in topics for s in (1, 2)
    )
    assert all(m["data"] == f"on {m['topic']}" for m in received)


def test_publish_ack_reports_seq_and_reach(cluster: Cluster) -> None:
    a = cluster.start("A")
    b = cluster.start("B", seeds=[a])
    cluster.wait_mesh()
    topic = topic_owned_by("A", ["A", "B"])
    with b.client() as client, client.subscribe(topic), a.client() as other:
        sub2 = other.subscribe(topic)
        first = client.publish(topic, b"x")
        second = client.publish(topic, "y")
        assert (first.seq, second.seq) == (1, 2)
        assert (second.nodes, second.subscribers) == (2, 2)
        assert client.publish(topic, b"z", ack=False) is None
        assert [sub2.recv(5).data for _ in range(3)] == [b"x", b"y", b"z"]
        sub2.close()


def test_topic_delete_ends_every_subscriber(cluster: Cluster) -> None:
    a = cluster.start("A")
    b = cluster.start("B", seeds=[a])
    c = cluster.start("C", seeds=[a])
    cluster.wait_mesh()
    topic = "to-be-deleted"
    subs = []
    for node in (b, c):
        proc, out, err = cluster.spawn(
            "subscribe", topic, "--node", node.api, name=f"del-{node.node_id}"
        )
        wait_subscribed(err)
        subs.append((proc, out, err))
    raw = raw_sub(c, topic.encode() + b"\x00")
    wait_for(lambda: a.members(topic)["nodes"] == {"B": 1, "C": 2}, 10, "subscribers visible")
    assert cluster.run("publish", topic, "before", "--node", a.api).returncode == 0
    deleted = cluster.run("topic", "delete", topic, "--node", a.api)
    assert deleted.returncode == 0, deleted.stderr
    assert "2 node(s), 3 subscriber(s)" in deleted.stdout
    for proc, out, err in subs:
        assert proc.wait(15) == 0
        assert out.read_text() == "before\n"
        assert "subscription ended" in err.read_text()
    frames = recv_all(raw, 2)
    assert msgpack.unpackb(frames[0][1])["seq"] == 1
    assert msgpack.unpackb(frames[1][1]) | {"epoch": 0} == {"seq": 2, "epoch": 0, "type": "closed"}
    # the CLI subscribers left, so the only member left is the raw SUB on C
    wait_for(lambda: a.members(topic)["nodes"] == {"C": 1}, 10, "CLI subscribers to leave")
    raw.close()
    wait_for(lambda: a.members(topic)["nodes"] == {}, 10, "the raw SUB to leave")
