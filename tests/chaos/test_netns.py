"""Faults over a real network stack: nodes on hosts in network namespaces.

Each node runs in its own namespace behind a veth pair on a bridge; the test pulls a
host's cable (link down) to split the network and plugs it back in to heal it.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import time

import pytest

from tests.chaos.faults import DELAY_S, LOSS_RATE
from tests.chaos.netlab import Host, NetLab, delay_available, firewall_available, timed

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


# The wire faults the chaos suite injects are real: each one does what it says, and
# clearing it restores the wire (else a schedule could pass with faults that do nothing).

PROBE_PORT = 7799


def listening(host: Host) -> socket.socket:
    server = host.raw_socket()
    server.bind((host.address, PROBE_PORT))
    server.listen(16)
    return server


def connect_time(src: Host, dst: Host, limit: float = 1.0) -> float | None:
    """Seconds for a TCP handshake from ``src`` to ``dst``; None if it fails in ``limit``."""
    with src.raw_socket() as client:
        client.settimeout(limit)
        started = time.monotonic()
        try:
            client.connect((dst.address, PROBE_PORT))
        except OSError:
            return None
        return time.monotonic() - started


def test_a_three_way_split_cuts_between_groups_only(lab: NetLab) -> None:
    reason = firewall_available()
    if reason:
        pytest.skip(reason)
    h1, h2, h3, h4 = hosts = [lab.add_host() for _ in range(4)]
    servers = [listening(h) for h in hosts]
    lab.split([[h1, h2], [h3], [h4]])
    assert connect_time(h1, h2) is not None and connect_time(h2, h1) is not None
    for src, dst in [(h1, h3), (h3, h1), (h2, h4), (h3, h4), (h4, h3)]:
        assert connect_time(src, dst, 0.3) is None, f"{src.name} reached {dst.name}"
    for host in hosts:
        lab.clear(host)
    assert connect_time(h1, h3) is not None and connect_time(h4, h3) is not None
    for server in servers:
        server.close()


def loss_rate(src: Host, dst: Host, count: int = 1000) -> float:
    """The share of ``count`` UDP datagrams from ``src`` that ``dst`` does not receive."""
    got = 0
    with src.raw_socket(socket.SOCK_DGRAM) as out, dst.raw_socket(socket.SOCK_DGRAM) as into:
        into.bind((dst.address, PROBE_PORT))
        into.settimeout(0.1)
        for _ in range(count // 100):  # in batches that the receive buffer holds whole
            for _ in range(100):
                # A drop in OUTPUT refuses the send (EPERM): lost all the same.
                with contextlib.suppress(PermissionError):
                    out.sendto(b"x", (dst.address, PROBE_PORT))
            with contextlib.suppress(TimeoutError):
                while True:
                    into.recv(64)
                    got += 1
    return 1 - got / count


def test_loss_drops_about_ten_percent_each_way(lab: NetLab) -> None:
    reason = firewall_available()
    if reason:
        pytest.skip(reason)
    h1, h2 = lab.add_host(), lab.add_host()
    assert loss_rate(h1, h2) == 0
    lab.loss(h1, LOSS_RATE)
    for src, dst in [(h1, h2), (h2, h1)]:
        lost = loss_rate(src, dst)
        assert 0.06 <= lost <= 0.14, f"{src.name} to {dst.name}: lost {lost:.1%}"  # 10 % +- 4 sd
    lab.clear(h1)
    assert loss_rate(h1, h2) == 0


def test_delay_holds_each_packet_fifty_ms(lab: NetLab) -> None:
    reason = delay_available()
    if reason:
        pytest.skip(reason)
    h1, h2 = lab.add_host(), lab.add_host()
    server = listening(h2)
    assert connect_time(h1, h2) < DELAY_S / 2
    lab.delay(h1, DELAY_S)
    slowed = [connect_time(h1, h2) for _ in range(5)]
    assert all(DELAY_S <= t < DELAY_S * 3 for t in slowed), slowed  # SYN held, SYN-ACK not
    lab.clear(h1)
    assert connect_time(h1, h2) < DELAY_S / 2
    server.close()
