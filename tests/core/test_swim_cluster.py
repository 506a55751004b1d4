"""The SWIM detector (zdps/core/swim.py) inside simulated clusters (tests/core/node_net.py).

The detector alone: test_swim.py. Rules under test:

* a crash is known everywhere fast (within 1.5 s), mostly through a dead verdict;
* a restart is never killed by news of the old life;
* a false dead verdict, or a short freeze, heals: the node comes back or refutes;
  the operator's log shows each suspicion, accusation and refutation.
"""

from __future__ import annotations

import pytest

from tests.core.helpers import verdict
from tests.core.node_net import SimNet
from zdps.wire import DEAD

pytestmark = pytest.mark.timeout(60)


def mesh(*names: str) -> SimNet:
    net = SimNet()
    net.add(names[0])
    for name in names[1:]:
        net.add(name, [names[0]])
    net.settle()
    return net


@pytest.mark.parametrize("crash_after", [0.0, 0.07, 0.13, 0.29, 0.41])
def test_a_crash_is_known_everywhere_within_1_5_s(crash_after: float) -> None:
    net = mesh("a", "b", "c", "d")
    net.advance(1.0 + crash_after)
    crashed = net.clock
    net.crash("b")
    net.advance(3.0)
    downs = [net.log_lines(n, "peer_down node=b reason=dead") for n in "acd"]
    assert all(len(d) == 1 for d in downs)
    assert max(d[0] for d in downs) - crashed <= 1.5
    assert net.entries(DEAD)  # at least one node learned it from a verdict
    assert net.converged()


def test_a_restart_is_never_killed_by_news_of_the_old_life() -> None:
    net = mesh("a", "b", "c")
    net.advance(1.0)
    old = net.nodes["b"].incarnation
    net.crash("b")
    net.advance(0.5)  # long enough for a suspicion of the old b, too short for a verdict
    net.restart("b")
    net.advance(0.1)
    for node in "ac":  # a dead verdict about the old life arrives late
        net.inject(node, net.envelope("a" if node == "c" else "c", [verdict(DEAD, "b", old)]))
    net.advance(3.0)
    assert net.converged()
    for node in "ac":
        assert net.log_lines(node, "peer_down node=b reason=dead") == []
        assert net.core(node).membership.peers["b"].incarnation == net.nodes["b"].incarnation


def test_a_node_declared_dead_while_alive_comes_back() -> None:
    net = mesh("a", "b", "c")
    net.advance(1.0)
    b = net.nodes["b"].incarnation
    net.inject("a", net.envelope("c", [verdict(DEAD, "b", b)]))  # a false verdict
    assert net.log_lines("a", "peer_down node=b reason=dead")
    net.advance(1.5)
    assert net.converged()
    assert len(net.log_lines("a", "peer_up node=b ")) == 2


def test_a_short_freeze_is_refuted_not_fatal() -> None:
    """b hears nothing and says nothing for 0.6 s; its peers suspect it, it refutes."""
    net = mesh("a", "b", "c")
    net.advance(1.0)
    net.isolate("b")
    suspected = False
    for _ in range(12):
        net.advance(0.05)
        suspected |= any(net.core(n).membership.detector.is_suspect("b") for n in "ac")
    assert suspected
    net.heal()
    net.advance(3.0)
    assert all(net.log_lines(n, "peer_down") == [] for n in "abc")
    assert net.core("b").membership.detector.counts["refuted"] >= 1
    assert not any(net.core(n).membership.detector.is_suspect("b") for n in "ac")
    # The operator sees the suspicion, the accusation and the refutation, once each.
    suspicions = [line for n in "ac" for _, line in net.logs[n] if "suspect node=b " in line]
    assert suspicions and all(line.startswith("suspect node=b by=") for line in suspicions)
    assert any(net.log_lines(n, "suspicion_refuted node=b version=") for n in "ac")
    for n in "ac":
        assert len(net.log_lines(n, "suspect node=b ")) == len(net.log_lines(n, "refuted node=b"))
    assert net.log_lines("b", "accused by=")
    assert net.log_lines("b", "readmitted") == []  # nobody dropped it
