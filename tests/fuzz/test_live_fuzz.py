"""100,000 hostile messages to a running 3-node cluster (docs/PROTOCOL.md §1, bad input).

No node dies, every node still answers, the rejects are counted, and a publisher and a
subscriber running beside the fuzzer lose nothing that was acknowledged. A longer run:
``python -m tests.fuzz.live --messages 1000000``.
"""

from __future__ import annotations

import os
import threading

import pytest

from tests.cluster.harness import Cluster, wait_for
from tests.fuzz.live import Legitimate, errors, fuzz, start_cluster

MESSAGES = int(os.environ.get("ZDPS_FUZZ_MESSAGES", "100000"))
SEED = int(os.environ.get("ZDPS_FUZZ_SEED", "1"))


@pytest.mark.timeout(600)
def test_a_cluster_under_fuzzing_keeps_running_and_loses_nothing(cluster: Cluster) -> None:
    nodes, keys = start_cluster(cluster)
    a, _, c = nodes
    legit = Legitimate(a, c)
    thread = threading.Thread(target=legit.run, name="legitimate")
    thread.start()
    assert legit.ready.wait(30) and legit.error is None, legit.error
    before = errors(nodes)
    try:
        figures = fuzz(nodes, keys, MESSAGES, SEED)
    finally:
        legit.stop.set()
        thread.join(60)
    print(f"\n{figures.line()}")
    assert [n.node_id for n in nodes if n.proc.poll() is not None] == []
    counted = errors(nodes) - before
    print(f"bad input counted: {dict(counted)}")
    print(f"legitimate: {len(legit.acked)} acked, {legit.failed} failed")
    assert legit.error is None, legit.error
    assert sum(figures.sent.values()) >= 0.95 * MESSAGES
    assert sum(counted.values()) >= MESSAGES // 10  # the rejects are counted
    assert legit.acked and not legit.missing, sorted(legit.missing)[:10]
    assert counted["spoofed_sender"] and counted["unauthenticated"]
    wait_for(
        lambda: all(n.alive_peers() >= {"A", "B", "C"} - {n.node_id} for n in nodes), 30, "mesh"
    )
    for node in nodes:
        assert "internal_error" not in node.logs() and "Traceback" not in node.logs()


@pytest.mark.timeout(300)
def test_a_cluster_without_curve_under_fuzzing_keeps_running(cluster: Cluster) -> None:
    """Without CURVE the fuzzer may speak for any node (docs/PROTOCOL.md §2.1): a forged
    ack or bye can cost legitimate messages, by design. What must hold even so: no node
    dies (two crashes found this way are regression tests now), every node answers, the
    rejects are counted, and the cluster is whole again afterwards."""
    nodes, _ = start_cluster(cluster, curve=False)
    before = errors(nodes)
    figures = fuzz(nodes, None, MESSAGES // 2, SEED)
    print(f"\n{figures.line()}")
    assert [n.node_id for n in nodes if n.proc.poll() is not None] == []
    counted = errors(nodes) - before
    print(f"bad input counted: {dict(counted)}")
    assert sum(counted.values()) >= MESSAGES // 20
    wait_for(
        lambda: all(n.alive_peers() >= {"A", "B", "C"} - {n.node_id} for n in nodes), 30, "mesh"
    )
    for node in nodes:
        assert "internal_error" not in node.logs() and "Traceback" not in node.logs()
