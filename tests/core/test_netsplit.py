"""Netsplits on the simulated network: each side keeps serving, and a heal converges.

Peers declared dead are redialed with backoff, so when the network heals the sides
find each other again without any seed configuration, exchange full syncs, and end
with identical membership, identical scope tables and identical rings, with no ghost
left from either side.
"""

from __future__ import annotations

import pytest

from tests.core.node_net import SimNet
from zdps.topics import exact_group

pytestmark = pytest.mark.timeout(60)

X, Y, Z = exact_group("x"), exact_group("y"), exact_group("z")


def tables(net: SimNet) -> dict[str, dict]:
    """Each node's whole scope table: group -> {node: count}."""
    return {
        n: {g: net.core(n).overlay.members(g) for g in net.core(n).overlay.which_groups()}
        for n in net.running()
    }


def split(net: SimNet, side_a: list[str], side_b: list[str]) -> None:
    for a in side_a:
        for b in side_b:
            net.cut(a, b)


def heal_time(net: SimNet, limit: float = 10.0) -> float:
    """Simulated seconds until membership, scope tables and rings agree everywhere."""
    started = net.clock
    while not (
        net.converged() and len({repr(sorted(t.items())) for t in tables(net).values()}) == 1
    ):
        if net.clock - started > limit:
            raise AssertionError(f"not converged {limit} s after the heal: {net.views()}")
        net.advance(0.05)
    return net.clock - started


def test_a_healed_netsplit_converges_without_ghosts() -> None:
    net = SimNet()
    net.add("a")
    net.add("b", ["a"])
    net.add("c", ["a"])  # c knows only a as a seed: b must redial c itself
    net.settle()
    net.subscribe("b", X)
    net.subscribe("c", Y)
    net.run_until_quiet()

    split(net, ["c"], ["a", "b"])
    net.advance(3.0)
    assert net.views() == {"a": {"b"}, "b": {"a"}, "c": set()}
    assert net.core("a").overlay.members(Y) == {}  # the far side's members vanished
    # Each side keeps serving and changing its own members during the split.
    net.subscribe("c", Z)
    net.unsubscribe("b", X)
    net.subscribe("a", X)
    net.advance(1.0)
    assert net.core("c").ring.nodes == {"c"}

    net.heal()
    took = heal_time(net)
    assert took <= 3.0, f"convergence took {took:.2f} s after the heal"
    expected = {X: {"a": 1}, Y: {"c": 1}, Z: {"c": 1}}
    assert all(table == expected for table in tables(net).values())
    assert len({frozenset(net.core(n).ring.nodes) for n in net.running()}) == 1


def test_three_way_split_heals() -> None:
    net = SimNet()
    for name, seeds in (("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["b"])):
        net.add(name, seeds)
    net.settle()
    for node, group in (("a", X), ("c", Y), ("d", Z)):
        net.subscribe(node, group)
    net.run_until_quiet()
    split(net, ["a"], ["b", "c", "d"])
    split(net, ["b"], ["c", "d"])
    net.advance(3.0)
    assert net.views() == {"a": set(), "b": set(), "c": {"d"}, "d": {"c"}}
    net.heal()
    heal_time(net)
    assert all(t == {X: {"a": 1}, Y: {"c": 1}, Z: {"d": 1}} for t in tables(net).values())


def test_a_peer_that_left_is_not_redialed() -> None:
    net = SimNet()
    net.add("a")
    net.add("b", ["a"])
    net.settle()
    net.leave("b")
    net.advance(5.0)
    hellos_to_b = [s for s in net.sent if s.endpoint == net.endpoint("b") and s.time > 0.5]
    assert hellos_to_b == []


def test_heal_without_any_seed_left_to_bridge() -> None:
    """b and c joined through a, which is gone for good: only redialing can rejoin them."""
    net = SimNet()
    net.add("a")
    net.add("b", ["a"])
    net.add("c", ["a"])
    net.settle()
    net.leave("a")
    net.advance(1.0)
    net.subscribe("c", Y)
    net.run_until_quiet()
    net.cut("b", "c")
    net.advance(3.0)
    assert net.views() == {"b": set(), "c": set()}
    net.heal()
    took = heal_time(net)
    assert took <= 3.0
    assert net.core("b").overlay.members(Y) == {"c": 1}


def test_an_update_lost_in_a_short_cut_is_repaired() -> None:
    """A cut shorter than the failure timeout drops an update; pings repair it (resync)."""
    net = SimNet()
    net.add("a")
    net.add("b", ["a"])
    net.settle()
    net.cut("a", "b")
    net.subscribe("b", X)  # the update to a is lost with the cut
    net.advance(0.5)
    net.heal()
    assert net.core("a").overlay.members(X) == {}
    net.advance(1.0)  # a few pings later
    assert net.core("a").overlay.members(X) == {"b": 1}
    assert net.core("a").counters["resyncs_asked"] >= 1
    assert net.views() == {"a": {"b"}, "b": {"a"}}  # nobody was declared dead
