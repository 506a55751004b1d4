"""Graceful drain (docs/PROTOCOL.md §4.5): SIGTERM or ``zdps drain`` hands the node's
history to the nodes that take its topics over before it leaves."""

from __future__ import annotations

import asyncio
import signal
import threading

import pytest

from tests.cluster.harness import Cluster, NodeProc, wait_for
from zdps import AsyncClient, Client, ZdpsError

pytestmark = pytest.mark.timeout(120)

TOPICS = [f"drain.{i}" for i in range(40)]


def publish_everywhere(node: NodeProc, count: int) -> None:
    with node.client() as client:
        messages = [(topic, f"{topic}:{i}") for topic in TOPICS for i in range(count)]
        results = list(client.publish_many(messages))
        assert all(getattr(r, "seq", 0) for r in results), results[:3]


def stored(node: NodeProc, topic: str) -> list[bytes]:
    with node.client() as client:
        return [entry[2] for entry in client.history(topic, since=0)["entries"]]


def owned_by(node: NodeProc, other: NodeProc) -> list[str]:
    with node.client() as client:
        return [t for t in TOPICS if client.members(t)["owner"] == other.node_id]


def test_sigterm_hands_the_history_of_a_node_without_replicas_over(cluster: Cluster) -> None:
    """With replicas = 0 only the owner holds a topic's history: without the drain a
    leaving owner would take it along."""
    a = cluster.start("A", replicas=0)
    b = cluster.start("B", seeds=[a], replicas=0)
    c = cluster.start("C", seeds=[a], replicas=0)
    cluster.wait_mesh()
    publish_everywhere(a, 5)
    moved = owned_by(a, b)
    assert moved, "B owns none of the topics: pick others"
    b.proc.send_signal(signal.SIGTERM)
    assert b.exit_code(30) == 0
    assert "drained" in b.logs() and "unconfirmed=[]" in b.logs(), b.logs()[-2000:]
    assert "exit_unclean" not in b.logs(), b.logs()[-2000:]
    wait_for(lambda: a.alive_peers() == {"C"} and c.alive_peers() == {"A"}, 10, "B to be gone")
    for topic in TOPICS:
        assert stored(a, topic) == [f"{topic}:{i}".encode() for i in range(5)], topic


def test_zdps_drain_reports_what_went_where_and_the_node_leaves(cluster: Cluster) -> None:
    a = cluster.start("A")
    b = cluster.start("B", seeds=[a])
    cluster.start("C", seeds=[a])
    cluster.wait_mesh()
    publish_everywhere(a, 3)
    done = cluster.run("drain", "--node", b.api, "--timeout", "20")
    assert done.returncode == 0, done.stderr
    # B holds every topic it owns or replicates: 2 of 3 nodes per placement
    assert "drained in" in done.stdout and "went to 2 node(s)" in done.stdout, done.stdout
    assert b.exit_code(10) == 0
    for topic in TOPICS:
        assert len(stored(a, topic)) == 3, topic


def test_the_asyncio_client_drains_a_node_too(cluster: Cluster) -> None:
    a = cluster.start("A")

    async def drain() -> dict:
        async with AsyncClient(a.api, timeout=5) as client:
            return await client.drain(timeout=5)

    said = asyncio.run(drain())
    # alone, it has nobody to hand its topics to
    assert (said["to"], said["unconfirmed"], said["pending_acks"]) == (0, [], 0), said
    assert a.exit_code(10) == 0


def test_a_draining_node_refuses_publishes_and_answers_the_rest(cluster: Cluster) -> None:
    """A peer that does not answer (stopped) keeps the drain waiting until its timeout."""
    a = cluster.start("A")
    b = cluster.start("B", seeds=[a], drain_timeout=30, peer_timeout=30, probe_interval=30)
    cluster.wait_mesh()
    publish_everywhere(a, 1)
    a.proc.send_signal(signal.SIGSTOP)
    try:
        b.proc.send_signal(signal.SIGTERM)
        refused = wait_for(
            lambda: (r := cluster.run("publish", "t", "x", "--node", b.api)).returncode and r,
            10,
            "B to refuse publishes",
        )
        assert "draining" in refused.stderr, refused.stderr
        assert b.status()["node"] == "B"  # everything but publishes is answered
        b.proc.send_signal(signal.SIGTERM)  # a second one: leave at once
        assert b.exit_code(10) == 0
    finally:
        a.proc.send_signal(signal.SIGCONT)


def test_a_rolling_restart_loses_no_acknowledged_message(cluster: Cluster) -> None:
    """Replicated publishes throughout, moving to the next node on any refusal, while
    each node in turn gets SIGTERM and starts again on its endpoints."""
    nodes = [cluster.start("A", history=100_000)]
    nodes += [cluster.start(name, seeds=[nodes[0]], history=100_000) for name in ("B", "C")]
    cluster.wait_mesh()
    acked: list[tuple[str, bytes]] = []
    stop = threading.Event()

    def publish() -> None:
        at, n = 0, 0
        client = Client(nodes[at].api, timeout=2)
        while not stop.is_set():
            topic, payload = f"roll.{n % 10}", b"%d" % n
            try:
                client.publish(topic, payload, ack="replicated")
            except ZdpsError:
                client.close(linger=0)
                at = (at + 1) % len(nodes)
                client = Client(nodes[at].api, timeout=2)
                continue
            acked.append((topic, payload))
            n += 1
        client.close(linger=0)

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    for i, node in enumerate(list(nodes)):
        before = len(acked)
        wait_for(lambda before=before: len(acked) > before + 100, 20, "publishes to go on")
        node.proc.send_signal(signal.SIGTERM)
        assert node.exit_code(30) == 0
        nodes[i] = cluster.start(
            node.node_id, same_as=node, seeds=[nodes[(i + 1) % 3]], history=100_000
        )
        cluster.wait_mesh(20)
    stop.set()
    publisher.join(10)
    assert len(acked) > 300
    for topic in {t for t, _ in acked}:
        kept = set(stored(nodes[0], topic))
        assert not [p for t, p in acked if t == topic and p not in kept], topic
