"""bench/scale's simulator (bench/scale_sim) at 10 nodes: its figures are sane, and what
it does for speed (heaps instead of scans, computations shared by the cores) changes
nothing that is simulated."""

from __future__ import annotations

import random

import pytest

from bench.scale_sim import Options, run
from bench.scale_sim.shared import LazyRing, shared_digest, sharing
from tests.core.node_net import SimNet
from zdps.core.ring import HashRing, node_set_digest
from zdps.core.tunables import CoreConfig

pytestmark = pytest.mark.timeout(60)

SHORT = {"warmup": 0.4, "steady": 1.0}


def test_ten_nodes_learn_a_join_at_once_and_a_death_within_the_timeouts() -> None:
    result = run(Options(nodes=10, **SHORT))
    assert result["cold_start"]["converged"] and result["cold_start"]["per_node"]["n"] == 10
    join = result["join"]
    assert join["converged"] and join["missing"] == 0 and join["known_by"]["n"] == 10
    assert join["known_by"]["max"] < 0.05  # hellos: a few one-way delays of ~1 ms
    crash = result["crash"]
    assert crash["converged"] and crash["missing"] == 0 and crash["known_by"]["n"] == 10
    # Found by a probe, suspected for 0.6-2.4 s (3-12 probe intervals at 10 nodes), or
    # silent for peer_timeout (2 s) at the latest; then known everywhere at once.
    assert 0.6 < crash["known_by"]["p50"] <= crash["known_by"]["max"] <= 2.1
    assert crash["known_by"]["max"] - crash["known_by"]["p50"] < 0.05
    assert result["false_deaths"] == 0 and result["false_suspicions"] == 0
    steady = result["steady"]
    # Each node pings 3 of its 9 peers (ping_fanout) every heartbeat (0.2 s) and probes
    # one peer every probe interval (0.2 s), answering as many probes: nothing else in
    # steady state.
    assert CoreConfig().ping_fanout == 3
    assert steady["messages"]["pings"] == pytest.approx(3 / 0.2, rel=0.05)
    assert steady["messages"]["probes"] == pytest.approx(2 / 0.2, rel=0.1)
    assert steady["pings"] > steady["probes"] > 0
    assert steady["verdicts"] == steady["peers"] == steady["syncs"] == steady["data"] == 0
    assert steady["total"] == pytest.approx(sum(steady[k] for k in ("pings", "probes")))
    assert result["memory"]["core_bytes"] > 10_000
    split = result["split"]
    # Each side drops the other as it drops a crashed node; the heal is found by the
    # redials of the peers declared dead (every 2 s at most), then hellos.
    assert split["converged"] and split["split"]["n"] == split["healed"]["n"] == 10
    assert 0.6 < split["split"]["p50"] <= split["split"]["max"] <= 2.1
    assert split["healed"]["max"] <= 2.5
    restart = result["restart"]  # the 7 nodes that are not seeds, in turn
    assert restart["converged"] and restart["restarts"] == 7
    assert restart["known_by"]["n"] == 7 * 9 and restart["known_by"]["max"] < 0.05


def test_under_one_percent_loss_nothing_is_declared_dead_wrongly() -> None:
    result = run(Options(nodes=10, loss=0.01, seed=3, **SHORT))
    assert result["retransmitted"] > 0
    assert result["false_deaths"] == 0
    assert result["join"]["converged"] and result["crash"]["converged"]


def test_shared_computations_change_no_figure() -> None:
    shared, exact = run(Options(nodes=10, **SHORT)), run(Options(nodes=10, exact=True, **SHORT))
    for phase in ("cold_start", "join", "crash", "split", "restart"):
        assert shared[phase] == exact[phase]
    for key in ("frames", "sim_seconds", "false_suspicions"):
        assert shared[key] == exact[key]
    assert {k: v for k, v in shared["steady"].items() if k != "cpu_ms_per_node_s"} == {
        k: v for k, v in exact["steady"].items() if k != "cpu_ms_per_node_s"
    }


def test_a_lazy_ring_answers_as_the_ring_does() -> None:
    rng = random.Random(5)
    nodes = [f"n{i}" for i in range(12)]
    real, lazy = HashRing(nodes[:6]), LazyRing(nodes[:6])
    topics = [f"t{i}" for i in range(300)]
    for _ in range(10):
        node = rng.choice(nodes)
        if rng.random() < 0.6:
            assert real.add(node) == lazy.add(node)
        else:
            assert real.remove(node) == lazy.remove(node)
        assert real.nodes == lazy.nodes and len(real) == len(lazy)
        assert [real.owner(t) for t in topics] == [lazy.owner(t) for t in topics]
        assert real.successors("t1", 3) == lazy.successors("t1", 3)
    assert shared_digest(reversed(nodes)) == node_set_digest(nodes)
    with sharing():
        net = SimNet()
        assert type(net.add("a").ring) is LazyRing
    assert type(SimNet().add("a").ring) is HashRing


def events(fast: bool) -> list[tuple[float, str, str]]:
    """Every log event of a 5-node cluster with jittered latencies through a crash."""
    seen: list[tuple[float, str, str]] = []
    net = SimNet(latency=0.001, jitter=0.002, rng=random.Random(7), fast=fast, record=False)
    net.on_log = lambda node, now, event: seen.append((now, node, str(event)))
    net.add("a")
    for name in "bcde":
        net.add(name, ["a"])
        net.advance(0.1)
    net.advance(1.0)
    net.crash("c")
    net.advance(3.0)
    return seen


def test_the_heaps_process_events_exactly_as_the_scans_do() -> None:
    fast = events(fast=True)
    assert any("peer_down" in line and "node=c" in line for _, _, line in fast)
    assert fast == events(fast=False)
