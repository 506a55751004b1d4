"""Erlang OTP's pg_SUITE, ported to zdps's sans-IO scope overlay: pg's group ``cluster``
(the others, and the mapping from pg to zdps: test_overlay_pg_basic.py).

Each test keeps the name of the pg_SUITE case it ports (lib/kernel/test/pg_SUITE.erl);
extra cases that pg does not have carry a descriptive name. Scopes are joined by
``OverlayNet``: ``connect`` is nodeup + discover on both sides, ``disconnect`` a netsplit
(or a stopped remote scope), ``restart`` a restarted scope, ``run()`` pg's ``sync(GS)``.
"""

from __future__ import annotations

import pytest

from tests.core.overlay_net import OverlayNet, group, sends
from zdps.core.overlay import NotJoined
from zdps.topics import prefix_group
from zdps.wire import SYNC, UPDATE

pytestmark = pytest.mark.timeout(60)


def test_two() -> None:
    """A local join is seen remotely (not as local); a kill propagates; remote joins seen."""
    net = OverlayNet("a", "b")
    net.connect("a", "b")
    g = group("two")
    net.join("a", g)
    assert net["a"].members(g) == {"a": 1}
    assert net["a"].local_count(g) == 1
    net.run()
    assert net["b"].members(g) == {"a": 1}
    assert net["b"].local_count(g) == 0
    assert net["b"].which_local_groups() == set()
    net.leave("a", g)  # stop_proc(Pid)
    net.run()
    assert net["a"].local_count(g) == 0
    assert net["b"].members(g) == {}
    net.join("b", g)  # Pid2
    net.join("b", g)  # Pid3
    net.run()
    assert net["a"].members(g) == {"b": 2}
    net.disconnect("a", "b")  # stop the peer
    assert net["a"].members(g) == {}
    assert net["a"].peers == frozenset()


def test_initial() -> None:
    """A join made before the peer exists reaches it by the discover -> sync exchange."""
    net = OverlayNet("a")
    g = group("initial")
    net.join("a", g)
    assert net["a"].local_count(g) == 1
    net.add("b")
    net.connect("a", "b")
    assert net["b"].members(g) == {}  # nothing delivered yet
    assert net.in_flight("a", "b") == [[SYNC, {g: 1}]]
    net.run()
    assert net["b"].members(g) == {"a": 1}
    assert net["b"].local_count(g) == 0
    net.leave("a", g)  # stop_proc(Pid)
    net.run()
    assert net["b"].members(g) == {}


def test_netsplit() -> None:
    """Changes on both sides of a partition converge after reconnect; the stale group is gone."""
    net = OverlayNet("a", "b")
    net.connect("a", "b")
    invisible, visible, g = group("$invisible"), group("$visible"), group("netsplit")
    net.join("b", invisible)  # RemoteOldPid
    net.run()
    assert net["a"].members(invisible) == {"b": 1}
    net.disconnect("a", "b")  # hohoho, partition!
    assert net["a"].members(invisible) == {}
    net.join("b", g)  # join - in a partition!
    net.leave("b", invisible)
    net.join("b", visible)
    assert net["b"].local_count(visible) == 1
    net.join("a", g)  # join locally too
    assert net.pending() == 0 and net.dropped == 0  # nobody to tell
    assert net["a"].members(g) == {"a": 1}
    assert net["b"].members(g) == {"b": 1}
    net.connect("a", "b")
    net.run()
    for node in "ab":
        assert net[node].members(g) == {"a": 1, "b": 1}
        assert net[node].members(visible) == {"b": 1}
        assert net[node].members(invisible) == {}
        assert invisible not in net[node].which_groups()


def test_netsplit_drops_in_flight() -> None:
    """An update in flight when the link breaks is lost; the resync on reconnect repairs it."""
    net = OverlayNet("a", "b")
    net.connect("a", "b")
    g, h = group("g"), group("h")
    net.join("b", g)
    net.run()
    net.leave("b", g)
    net.join("b", h)
    assert len(net.in_flight("b", "a")) == 2
    net.disconnect("a", "b")
    assert net.dropped == 2
    assert net.pending() == 0
    net.connect("a", "b")
    net.run()
    assert net["a"].members(g) == {}
    assert net["a"].members(h) == {"b": 1}


def test_trisplit() -> None:
    """After a split and reconnect, a third node connected to both sees the peer's join."""
    net = OverlayNet("a", "b")
    net.connect("a", "b")
    one, three = group("one"), group("three")
    net.join("b", three)  # PeerPid2
    net.run()
    net.disconnect("a", "b")
    net.connect("a", "b")
    net.join("b", one)  # PeerPid2
    net.add("c")  # trisplit_second
    net.connect("c", "b")
    net.connect("c", "a")
    net.run()
    assert net["c"].members(one) == {"b": 1}
    assert net["c"].members(three) == {"b": 1}
    assert net["a"].members(one) == {"b": 1}


def test_membership_not_transitive() -> None:
    """Nodes that are not directly connected never see each other's groups (pg moduledoc)."""
    net = OverlayNet("a", "b", "c")
    net.connect("a", "c")
    net.connect("b", "c")
    g = group("g")
    net.join("a", g)
    net.join("b", g)
    net.run()
    assert net["c"].members(g) == {"a": 1, "b": 1}
    assert net["a"].members(g) == {"a": 1}
    assert net["b"].members(g) == {"b": 1}


def test_foursplit() -> None:
    """A member that dies during a partition is gone on both sides after the reconnect.

    pg kills a peer process that never joined anything; here the peer's member of
    group ``one`` dies during the partition, which is the case that can go wrong.
    """
    net = OverlayNet("a", "b")
    net.connect("a", "b")
    one, two, three = group("one"), group("two"), group("three")
    net.join("a", one)
    net.join("a", two)
    net.join("b", one)  # PeerPid1
    net.leave("a", one)
    with pytest.raises(NotJoined):
        net.leave("a", three)
    net.run()
    assert net["a"].members(one) == {"b": 1}
    net.disconnect("a", "b")
    net.leave("b", one)  # stop_proc(PeerPid1) in the partition
    with pytest.raises(NotJoined):
        net.leave("a", three)
    assert net["a"].members(one) == {}
    net.connect("a", "b")
    net.run()
    assert net.views(one) == {"a": {}, "b": {}}
    assert net.views(two) == {"a": {"a": 1}, "b": {"a": 1}}


def test_exchange() -> None:
    """Two peers change their groups during a split; reconnect exchanges everything."""
    net = OverlayNet("a", "b", "c")  # b = exchange, c = exchange_second
    net.connect("a", "b")
    net.connect("a", "c")
    g, second, third = group("exchange"), group("second"), group("third")
    net.join("b", g, 10)  # Pids10
    net.run()
    assert net["a"].members(g) == {"b": 10}
    net.leave("b", g, 3)  # kill the first 3 of Pids10
    net.run()
    assert net["a"].members(g) == {"b": 7}
    net.disconnect("a", "b")
    net.disconnect("a", "c")
    assert net["a"].members(g) == {}
    assert net["a"].which_groups() == set()
    for _ in range(10):
        net.join("c", g)  # each of Pids2
    for _ in range(10):
        net.join("b", second)  # each of Pids11
    net.join("b", third, 10)  # Pids11 at once
    net.connect("a", "b")
    net.connect("a", "c")
    net.run()
    assert net["a"].members(g) == {"b": 7, "c": 10}
    assert net["a"].members(second) == {"b": 10}
    assert net["a"].members(third) == {"b": 10}
    total = sum(net["a"].members(g).values()) + sum(net["a"].members(second).values())
    assert total == 27
    net.leave("b", third, 3)  # Left
    net.run()
    assert net["a"].members(third) == {"b": 7}
    with pytest.raises(NotJoined):
        net.leave("b", group("left"), 7)
    net.leave("b", third, 7)  # Stay
    net.run()
    assert net["a"].members(third) == {}
    assert net["a"].which_groups() == {g, second}
    assert net["c"].members(third) == {}  # c is not connected to b


def test_nolocal() -> None:
    """Remote joins never show up as local; nothing but a peer's own messages names it."""
    net = OverlayNet("a", "b")
    net.connect("a", "b")
    g = group("nolocal")
    net.join("b", g)
    net.join("b", g)
    net.run()
    a = net["a"]
    assert a.local_count(g) == 0
    assert a.which_local_groups() == set()
    assert a.local_counts() == {}
    assert a.members(g) == {"b": 2}
    # a message that claims to come from "a" itself cannot change a's local counts
    ignored = a.ignored
    assert net.inject("a", "a", [UPDATE, {g: 5}]) == []
    assert a.ignored == ignored + 1
    assert a.local_count(g) == 0
    assert a.members(g) == {"b": 2}


def test_double() -> None:
    """A member joined twice (before and after the peer appears) counts 2 on both nodes."""
    net = OverlayNet("a", "b")
    g = group("double")
    net.join("a", g)
    net.connect("a", "b")
    net.join("a", g)
    assert net["a"].members(g) == {"a": 2}
    # the duplicate travels both in the sync and in the join broadcast
    assert net.in_flight("a", "b") == [[SYNC, {g: 1}], [UPDATE, {g: 2}]]
    net.run()
    assert net["b"].members(g) == {"a": 2}


def test_scope_restart() -> None:
    """A restarted scope loses its local members; remote members are re-synced to it."""
    net = OverlayNet("a", "b")
    net.connect("a", "b")
    g = group("scope_restart")
    net.join("a", g, 2)  # [Pid, Pid]
    net.join("b", g)  # RemotePid
    net.run()
    assert net["a"].members(g) == {"a": 2, "b": 1}
    old = net["a"]
    new = net.restart("a")
    assert new is not old
    assert new.node == "a"
    net.run()
    assert net["a"].members(g) == {"b": 1}
    assert net["a"].local_count(g) == 0
    assert net["b"].members(g) == {"b": 1}


def test_missing_scope_join() -> None:
    """pg: join/leave on a scope that is not running exits with noproc.

    A missing scope process has no meaning in sans-IO: a ``Overlay`` exists as long as
    the caller holds it. The nearest meaningful things are tested instead: leaving
    a group never joined raises ``NotJoined`` (and tells nobody), and operating on a
    peer that was never discovered is ignored.
    """
    net = OverlayNet("a", "b")
    net.connect("a", "b")
    net.run()
    a = net["a"]
    g = group("missing_scope_join")
    with pytest.raises(NotJoined) as info:
        a.leave(g)
    assert isinstance(info.value, KeyError)
    assert net.pending() == 0
    assert a.version == 0
    # a peer that was never discovered
    assert a.peer_down("ghost") == []
    assert net.inject("ghost", "a", [UPDATE, {g: 1}]) == []
    assert net.inject("ghost", "a", [SYNC, {g: 1}]) == []
    assert a.ignored == 2
    assert a.members(g) == {}
    assert a.peers == frozenset({"b"})
    assert a.version == 0


def test_empty_group_by_remote_leave() -> None:
    """A remote leave of the last member deletes the group everywhere, peer map included."""
    net = OverlayNet("a", "b")
    net.connect("a", "b")
    a = net["a"]
    g = group("empty_group_by_remote_leave")
    net.join("b", g)
    net.run()
    assert a.members(g) == {"b": 1}
    assert a._remote["b"] == {g: 1}  # white box, as in pg
    net.leave("b", g)
    net.run()
    assert a.members(g) == {}
    assert g not in a.which_groups()
    assert a._remote["b"] == {}
    assert a.peers == frozenset({"b"})
    # the other variant: join([Pid1, Pid2]) then leave them one at a time
    net.join("b", g, 2)
    net.run()
    assert a.members(g) == {"b": 2}
    net.leave("b", g)
    net.run()
    assert a._remote["b"] == {g: 1}
    net.leave("b", g)
    net.run()
    assert a.members(g) == {}
    assert a.which_groups() == set()
    assert a._remote["b"] == {}
    assert a._groups == {}


def test_empty_prefix_group_by_remote_leave() -> None:
    """The same for a prefix group: no ghost in reach() and no leftover prefix index."""
    net = OverlayNet("a", "b")
    net.connect("a", "b")
    a = net["a"]
    news = prefix_group("news.")
    net.join("b", news)
    net.run()
    assert a.reach(b"news.today") == {"b": 1}
    net.leave("b", news)
    net.run()
    assert a.reach(b"news.today") == {}
    assert a.which_groups() == set()
    assert a._remote["b"] == {}
    assert a._prefix_lengths == {}


def test_disconnected_start() -> None:
    """A scope starts, works and restarts on a node with no connections."""
    net = OverlayNet("a", "b")
    net.connect("a", "b")
    net.disconnect("a", "b")
    dropped = net.dropped
    assert dropped == 2  # the two syncs in flight
    g = group("disconnected_start")
    b = net.restart("b")
    assert net.neighbours("b") == []
    assert sends(net.join("b", g)) == []
    assert b.members(g) == {"b": 1}
    assert b.peers == frozenset()
    b = net.restart("b")
    assert b.which_groups() == set()
    assert net["a"].members(g) == {}
    assert net.pending() == 0
    assert net.dropped == dropped


def test_forced_sync() -> None:
    """A bogus sync replaces the peer's groups; a forced resync corrects it; syncs repeat safely."""
    net = OverlayNet("a", "b")
    net.connect("a", "b")
    one, fs = group("one"), group("forced_sync")
    net.join("a", one)  # Pid
    net.join("b", one)  # RemotePid
    net.run()
    net.disconnect("a", "b")  # hohoho, partition!
    net.connect("a", "b")
    net.run()
    expected = {"a": 1, "b": 1}
    a = net["a"]
    assert a.members(one) == expected
    a.monitor_overlay("w")
    # white box: one is doubled, an extra group appears
    net.inject("b", "a", [SYNC, {one: 2, fs: 2}])
    assert a.members(fs) == {"b": 2}
    assert a.members(one) == {"a": 1, "b": 2}
    assert sorted(net.take_events("a", "w")) == [
        ("join", fs, "b", 2),
        ("join", one, "b", 1),
    ]
    # force a sync the way pg does: discover sent to the peer, which answers with a sync
    forced = net.peer_up("b", "a")
    assert [s.message.encode() for s in sends(forced)] == [[SYNC, {one: 1}]]
    net.run()
    assert a.members(one) == expected
    assert a.members(fs) == {}
    assert a.which_groups() == {one}
    assert sorted(net.take_events("a", "w")) == [
        ("leave", fs, "b", 2),
        ("leave", one, "b", 1),
    ]
    # and simulate an extra sync: nothing changes, nobody is told
    version = a.version
    net.peer_up("b", "a")
    assert net.run() == 1
    assert a.members(one) == expected
    assert a.version == version
    assert net.take_events("a") == []


def test_group_leave() -> None:
    """16 remote joins then 4 leaves leave 12; the peer stopping empties the group."""
    net = OverlayNet("a", "b")
    net.connect("a", "b")
    two = group("two")
    net.join("b", two, 16)  # join 16 times!
    net.leave("b", two, 4)
    net.run()
    assert net["a"].members(two) == {"b": 12}
    net.disconnect("a", "b")  # stop_node
    assert net["a"].members(two) == {}
    assert net["a"].which_groups() == set()
