"""Graceful drain (docs/PROTOCOL.md §4.5): SIGTERM or ``zdps drain`` hands the node's
history to the nodes that take its topics over before it leaves."""

from __future__ import annotations

import signal

import pytest

from tests.cluster.harness import Cluster, NodeProc, wait_for

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
    assert b.proc.wait(30) == 0
    assert "drained" in b.logs() and "unconfirmed=[]" in b.logs(), b.logs()[-2000:]
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
    assert b.proc.wait(10) == 0
    for topic in TOPICS:
        assert len(stored(a, topic)) == 3, topic


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
        assert b.proc.wait(10) == 0
    finally:
        a.proc.send_signal(signal.SIGCONT)
