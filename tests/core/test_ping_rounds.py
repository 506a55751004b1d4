"""Pings to a few peers an interval, in turn (zdps/core/ping_rounds.py), and hellos that
carry a peer list only where one is wanted (membership.py, docs/PROTOCOL.md §4.1, §4.3).

* ``targets``: distinct alive peers, all of them up to the fanout, else exactly
  ``fanout``; a peer alive all along is pinged at most two rounds apart, and so within
  the silence the backstop allows (hypothesis over joins, deaths and intervals).
* In a cluster larger than the fanout: no false silence death over a long run, a link
  cut one way still dropped by the backstop (later, as documented), and each node's
  pings per interval are the fanout.
* A join: only the hellos to and from the seed carry a peer list.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.node_net import SimNet, mesh
from zdps.core.peers import Peer, PeerState, PeerTable
from zdps.core.ping_rounds import PingRounds
from zdps.core.tunables import CoreConfig
from zdps.wire import HELLO, PING

pytestmark = pytest.mark.timeout(120)

HB = CoreConfig().heartbeat_interval


@given(
    fanout=st.integers(1, 6),
    start=st.integers(0, 20),
    changes=st.lists(st.tuples(st.booleans(), st.integers(0, 40)), max_size=60),
    seed=st.integers(0, 1000),
)
def test_every_peer_alive_all_along_is_pinged_within_two_rounds(
    fanout: int, start: int, changes: list[tuple[bool, int]], seed: int
) -> None:
    rounds = PingRounds(fanout, str(seed))
    peers = PeerTable("me")
    last: dict[str, int] = {}  # peer: the interval it was last pinged (or came up)
    peak: dict[str, int] = {}  # peer: the most peers alive since then (rounds shrink late)

    def up(node: str, interval: int) -> None:
        peers[node] = Peer(node, f"tcp://127.0.0.1:{len(peers) + 1}", 1, PeerState.ALIVE, 0.0)
        last[node], peak[node] = interval, len(peers)

    for i in range(start):
        up(f"n{i}", -1)
    for interval, (joins, which) in enumerate([*changes, *[(True, -1)] * 40]):
        alive = peers.alive()
        if which >= 0 and joins and f"j{which}" not in peers:
            up(f"j{which}", interval)
        elif which >= 0 and not joins and alive:
            gone = alive[which % len(alive)]
            del peers[gone], last[gone], peak[gone]
        alive = peers.alive()
        targets = rounds.targets(peers)
        assert len(set(targets)) == len(targets) and set(targets) <= set(alive)
        assert len(targets) == min(fanout, len(alive))
        for node in peak:
            peak[node] = max(peak[node], len(alive))
        for node in targets:
            last[node], peak[node] = interval, len(alive)
        # The longest a peer may wait: two rounds (it came up just after a round began),
        # of as many peers as were alive meanwhile (a round started larger ends later).
        for node, at in last.items():
            assert interval - at <= max(2 * math.ceil(peak[node] / fanout), 2), (node, at)
        longest = 2 * math.ceil(len(alive) / fanout) if alive else 0
        silence = rounds.silence(len(alive), HB, 2.0)
        assert silence >= max(2.0, (longest + 1) * HB)


def spread(fanout: int, names: str) -> SimNet:
    return mesh(names, CoreConfig(ping_fanout=fanout))


def test_a_cluster_larger_than_the_fanout_pings_a_few_and_loses_nobody() -> None:
    """Seven peers, one ping an interval: each peer is pinged every 7 intervals, up to
    14 apart (2.8 s, over peer_timeout), and the backstop allows 22 (4.4 s): in 60 s
    nobody is dropped, nothing is suspected, and each node sent a ping an interval."""
    net = spread(1, "abcdefgh")
    start = len(net.entries(PING))
    net.advance(60.0)
    assert net.converged()
    assert net.log_lines("a", "peer_down") == [] and net.log_lines("a", "suspect") == []
    for node in "abcdefgh":
        assert net.log_lines(node, "peer_down") == [], node
    pings = len(net.entries(PING)) - start
    assert pings == pytest.approx(8 * 60.0 / HB, rel=0.02)
    assert net.core("a").membership.detector.silence == pytest.approx(22 * HB)


def test_a_link_cut_one_way_is_still_dropped_by_the_backstop_later() -> None:
    """As test_peer_heard_only_through_others_is_dropped_here_and_readmitted, with pings
    to two peers an interval: the backstop waits three rounds and an interval."""
    net = spread(2, "abcdefgh")
    net.advance(HB)  # set at each ping interval, from the peers alive then
    silence = net.core("a").membership.detector.silence
    assert silence == pytest.approx(13 * HB)
    cut_at = net.clock
    net.cut("b", "a", both=False)  # a stops hearing b; b still hears a
    while not net.log_lines("a", "peer_down node=b"):
        net.advance(HB)
        assert net.clock < cut_at + 10.0
    (down,) = net.log_lines("a", "peer_down node=b reason=dead")
    assert cut_at + silence <= down <= cut_at + silence + HB + 1e-3
    assert "a" in net.core("b").membership.alive()  # b never noticed
    net.heal()
    net.advance(3.0)
    assert net.converged()


def test_a_join_sends_two_peer_lists() -> None:
    """The new node's hello to its seed carries its list and asks for the seed's; its
    hellos to the peers it learned of there, and their answers, carry none. Before, each
    of the 2 (N - 1) hellos carried a list: O(N²) bytes a join."""
    net = mesh("abcdef", CoreConfig())
    start = len(net.sent)
    net.add("g", ["a"])
    net.run_until_quiet()
    assert net.converged()
    hellos = [(s, body) for s, body in net.entries(HELLO) if s in net.sent[start:]]
    listed = {(s.src, s.dst) for s, body in hellos if "peers" in body}
    assert listed == {("g", "a"), ("a", "g")}
    assert len(hellos) == 2 * 6
