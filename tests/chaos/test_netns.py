"""Faults over a real network stack: nodes on hosts in network namespaces.

Each node runs in its own namespace behind a veth pair on a bridge; the test pulls a
host's cable (link down) to split the network and plugs it back in to heal it.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.chaos.netlab import NetLab, timed

pytestmark = pytest.mark.timeout(180)

PEER_TIMEOUT = 2.0
HEAL_LIMIT = 3.0  # issue: identical membership and ring within 3 s of the heal


def three_hosts(lab: NetLab) -> list:
    hosts = [lab.add_host() for _ in range(3)]
    lab.start(hosts[0])
    for host in hosts[1:]:
        lab.start(host, seeds=[hosts[0]])
    timed(lab.converged, 10, "the three hosts to form a mesh")
    return hosts


def test_partition_and_heal_over_a_real_network(lab: NetLab) -> None:
    h1, h2, h3 = three_hosts(lab)
    lab.link(h3, up=False)
    split = timed(
        lambda: (
            h1.alive_peers() == {"h2"} and h2.alive_peers() == {"h1"} and h3.alive_peers() == set()
        ),
        PEER_TIMEOUT + 3,
        "both sides of the partition to drop each other",
    )
    assert h3.status()["ring"]["nodes"] == ["h3"]  # each side keeps serving itself
    lab.link(h3, up=True)
    healed = timed(lab.converged, HEAL_LIMIT, "membership and ring to converge after the heal")
    print(f"\nsplit seen after {split:.2f} s; converged {healed:.2f} s after the heal")


def test_kill9_is_detected_over_a_real_network(lab: NetLab) -> None:
    h1, h2, h3 = three_hosts(lab)
    lab.kill(h3)
    detected = timed(
        lambda: h1.alive_peers() == {"h2"} and h2.alive_peers() == {"h1"},
        PEER_TIMEOUT + 1,
        "h3 to be declared dead",
    )
    print(f"\nkill -9 detected by both peers in {detected:.2f} s")


def test_a_frozen_node_is_dropped_then_rejoins_when_thawed(lab: NetLab) -> None:
    """SIGSTOP longer than the peer timeout: declared dead; SIGCONT: back within 3 s."""
    h1, h2, h3 = three_hosts(lab)
    lab.signal(h3, signal.SIGSTOP)
    timed(
        lambda: h1.alive_peers() == {"h2"} and h2.alive_peers() == {"h1"},
        PEER_TIMEOUT + 3,
        "the frozen node to be declared dead",
    )
    lab.signal(h3, signal.SIGCONT)
    back = timed(lab.converged, HEAL_LIMIT, "the thawed node to rejoin")
    print(f"\nthawed node rejoined in {back:.2f} s")


def test_a_short_freeze_is_not_a_death(lab: NetLab) -> None:
    h1, h2, h3 = three_hosts(lab)
    lab.signal(h3, signal.SIGSTOP)
    time.sleep(PEER_TIMEOUT / 4)  # the fault itself is a duration, not a wait for a result
    lab.signal(h3, signal.SIGCONT)
    timed(lab.converged, 2, "the mesh after a short freeze")
    for host in (h1, h2):
        assert host.status()["counters"]["peers_lost"] == 0
