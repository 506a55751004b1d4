"""Erlang OTP's pg_SUITE, ported to zdps's sans-IO scope overlay.

Each test keeps the name of the pg_SUITE case it ports (lib/kernel/test/pg_SUITE.erl).
The mapping, from pg to zdps:

* a pg scope process is one ``Overlay(node)``; a pid joined to a group is one unit of
  the node's local count in that group (a pid joined twice is a count of 2);
* nodeup + discover is ``peer_up`` on both sides (``ScopeNet.connect``); a netsplit
  or a stopped remote scope is ``peer_down`` (``ScopeNet.disconnect``);
* a killed local member is a local leave of its count; a restarted scope is a new
  ``Overlay`` with the same node id, which its peers see go down and come back;
* pg's ``sync(GS)`` barriers become ``ScopeNet.run()``: deliver until quiescent;
* pg's monitor messages ``{Ref, join|leave, Group, Pids}`` are ``MemberEvent``s.

``errors`` becomes malformed input raising ProtocolError (there is no server to
crash). Not ported: ``protocol_upgrade`` (there is no versioned discover) and
``monitor_self`` (a watcher is a plain key, it cannot die). Extra cases that pg does
not have carry a descriptive name.
"""

from __future__ import annotations

import time

import pytest

from tests.core.scope_net import ScopeNet
from zdps.core.overlay import NotJoined, Overlay, OverlaySend
from zdps.topics import exact_group, prefix_group
from zdps.wire import SYNC, UPDATE, ProtocolError
from zdps.wire.gossip import Update
from zdps.wire.messages import decode_message


def sends(actions: list) -> list[OverlaySend]:
    """The OverlaySend actions among ``actions``."""
    return [a for a in actions if isinstance(a, OverlaySend)]


pytestmark = pytest.mark.timeout(60)


def group(name: str) -> bytes:
    """pg's atom group names become exact-topic groups."""
    return exact_group(name)


# ---------------------------------------------------------------------- basic


def test_pg() -> None:
    """The scope API on one node: join, read back every way, leave, all empty again."""
    s = Overlay("a")
    g = group("pg")
    assert sends(s.join(g)) == []
    assert s.local_count(g) == 1
    assert s.members(g) == {"a": 1}
    assert s.which_groups() == {g}
    assert s.which_local_groups() == {g}
    assert s.local_counts() == {g: 1}
    s.leave(g)
    assert s.members(g) == {}
    assert s.which_groups() == set()
    assert s.which_local_groups() == set()
    assert s.local_counts() == {}


def test_errors() -> None:
    """Malformed scope messages raise ProtocolError and change nothing (pg crashes)."""
    net = ScopeNet("a", "b")
    net.connect("a", "b")
    net.join("b", group("kept"))
    net.run()
    a = net["a"]
    before, version = net.table("a"), a.version
    bad_messages = [
        [SYNC],
        [SYNC, [b"kept\x00", 1]],
        [UPDATE, {b"\x00zdps.sync.x": 1}],
        [UPDATE, {"text\x00": 1}],
        [UPDATE, {b"\x00": 1}],
        [UPDATE, {group("ok"): -1}],
        [UPDATE, {group("ok"): 1.5}],
        [UPDATE, {group("ok"): True}],
        # one bad entry spoils the whole message: the good one must not be applied
        [SYNC, {group("ok"): 2, b"\xff\xfe": 1}],
        [UPDATE, {group("ok"): 2, group("bad"): -3}],
    ]
    for message in bad_messages:
        with pytest.raises(ProtocolError) as info:
            a.handle("b", decode_message(message))
        assert info.value.code == "malformed", message
    assert net.table("a") == before == {group("kept"): {"b": 1}}
    assert a.version == version


def test_leave_exit_race() -> None:
    """An explicit leave followed by the late leave of the member's death: NotJoined, no harm."""
    net = ScopeNet("a", "b")
    net.connect("a", "b")
    net.run()
    g = group("test")
    a = net["a"]
    for _ in range(100):
        net.join("a", g)
        net.leave("a", g)
        version = a.version
        with pytest.raises(NotJoined):
            net.leave("a", g)  # the 'DOWN' that was already queued
        assert a.version == version
    assert net.pending() == 200  # one join and one leave each time, nothing for the DOWN
    net.run()
    assert net.views(g) == {"a": {}, "b": {}}
    assert net["b"].which_groups() == set()


def test_single() -> None:
    """Single node: multi-join is a count; NotJoined for an unknown group; a death is a leave."""
    s = Overlay("a")
    g = group("single")
    s.join(g)
    s.join(g, 2)  # join [self(), self()]
    assert s.local_count(g) == 3
    assert s.members(g) == {"a": 3}
    with pytest.raises(NotJoined):
        s.leave(group("$missing$"))
    s.leave(g, 2)
    s.leave(g)
    assert s.which_groups() == set()
    assert s.local_count(g) == 0
    assert s.members(g) == {}
    # double: self() and another pid; the other pid dies
    s.join(g)
    s.join(g)
    assert s.members(g) == {"a": 2}
    s.leave(g)  # stop_proc(Pid)
    assert s.local_count(g) == 1
    assert s.members(g) == {"a": 1}
    s.leave(g)
    assert s.members(g) == {}


def test_single_leave_more_than_joined() -> None:
    """A leave of more members than joined removes what there is, and says so to peers."""
    net = ScopeNet("a", "b")
    net.connect("a", "b")
    g = group("g")
    net.join("a", g, 2)
    net.run()
    actions = net.leave("a", g, 5)
    assert [a.message.encode() for a in sends(actions)] == [[UPDATE, {g: 0}]]
    net.run()
    assert net.views(g) == {"a": {}, "b": {}}


def test_dyn_distribution() -> None:
    """A nodeup for the local node must not make it look remote; join still works."""
    s = Overlay("a")
    assert s.peer_up("a") == []
    assert s.peers == frozenset()
    assert sends(s.join(group("g"))) == []
    assert s.members(group("g")) == {"a": 1}
    assert s.peer_down("a") == []
    assert s.members(group("g")) == {"a": 1}


def test_process_owner_check() -> None:
    """Only positive local counts can join (pg: nolocal / function_clause for bad members)."""
    s = Overlay("a")
    for bad in (0, -1):
        with pytest.raises(ValueError):
            s.join(group("g"), bad)
    assert s.which_groups() == set()
    assert s.version == 0


def test_overlay_missing() -> None:
    """Crafted join/leave from a scope that is not (or no longer) in the overlay are ignored."""
    net = ScopeNet("a", "b")
    net.connect("a", "b")
    g = group("group")
    net.join("a", g)
    net.run()
    net.disconnect("a", "b")  # the remote scope stops
    a = net["a"]
    version, ignored = a.version, a.ignored
    assert net.inject("b", "a", [UPDATE, {g: 1}]) == []
    assert a.members(g) == {"a": 1}
    assert net.inject("b", "a", [UPDATE, {g: 0}]) == []
    assert net.inject("b", "a", [SYNC, {g: 3, group("other"): 1}]) == []
    assert net.inject("never-seen", "a", [UPDATE, {g: 7}]) == []
    assert a.members(g) == {"a": 1}
    assert a.which_groups() == {g}
    assert a.peers == frozenset()
    assert a.version == version
    assert a.ignored == ignored + 4


# ---------------------------------------------------------------------- cluster


def test_two() -> None:
    """A local join is seen remotely (not as local); a kill propagates; remote joins seen."""
    net = ScopeNet("a", "b")
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
    net = ScopeNet("a")
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
    net = ScopeNet("a", "b")
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
    net = ScopeNet("a", "b")
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
    net = ScopeNet("a", "b")
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
    net = ScopeNet("a", "b", "c")
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
    net = ScopeNet("a", "b")
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
    net = ScopeNet("a", "b", "c")  # b = exchange, c = exchange_second
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
    net = ScopeNet("a", "b")
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
    net = ScopeNet("a", "b")
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
    net = ScopeNet("a", "b")
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
    net = ScopeNet("a", "b")
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
    net = ScopeNet("a", "b")
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
    net = ScopeNet("a", "b")
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
    net = ScopeNet("a", "b")
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
    net = ScopeNet("a", "b")
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
    a.monitor_scope("w")
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
    net = ScopeNet("a", "b")
    net.connect("a", "b")
    two = group("two")
    net.join("b", two, 16)  # join 16 times!
    net.leave("b", two, 4)
    net.run()
    assert net["a"].members(two) == {"b": 12}
    net.disconnect("a", "b")  # stop_node
    assert net["a"].members(two) == {}
    assert net["a"].which_groups() == set()


# ---------------------------------------------------------------------- races


def test_update_after_one_sided_peer_down_is_ignored() -> None:
    """pg ignores join/leave from a peer not in the overlay (flapping nodes)."""
    net = ScopeNet("a", "b")
    net.connect("a", "b")
    g = group("g")
    net.join("b", g)
    net.run()
    net.join("b", g)  # in flight to a ...
    net.peer_down("a", "b")  # ... when a drops b, but the link still delivers
    assert net["a"].members(g) == {}
    net.run()
    assert net["a"].members(g) == {}  # no ghost from the late update
    assert net["a"].ignored == 1
    net.disconnect("a", "b")
    net.connect("a", "b")
    net.run()
    assert net["a"].members(g) == {"b": 2}


def test_sync_and_updates_in_flight_apply_in_order() -> None:
    """Held sync and updates on one link apply in FIFO order, each to the right state."""
    net = ScopeNet("a", "b")
    g, h = group("g"), group("h")
    net.join("a", g)
    net.connect("a", "b")
    net.hold("a", "b")
    net.join("a", h, 2)
    net.peer_up("a", "b")  # a forced resync, queued behind the update
    net.leave("a", g)
    net.join("b", g)  # the other direction is not held
    assert net.run() == 2  # b's sync and b's update reach a
    assert net["a"].members(g) == {"b": 1}
    assert net["b"].which_groups() == {g}
    assert net.in_flight("a", "b") == [
        [SYNC, {g: 1}],
        [UPDATE, {h: 2}],
        [SYNC, {g: 1, h: 2}],
        [UPDATE, {g: 0}],
    ]
    seen = []
    while net.in_flight("a", "b"):
        net.deliver("a", "b")
        seen.append(net.table("b"))
    assert seen == [
        {g: {"a": 1, "b": 1}},
        {g: {"a": 1, "b": 1}, h: {"a": 2}},
        {g: {"a": 1, "b": 1}, h: {"a": 2}},
        {g: {"b": 1}, h: {"a": 2}},
    ]
    net.release("a", "b")
    assert net.run() == 0


# ---------------------------------------------------------------------- performance


def test_thundering_herd() -> None:
    """2,000 identical 10,000-group syncs then a join must take < 5 s (pg's timetrap).

    A sync that changes one group among the 10,000 must still be applied exactly.
    """
    group_count, sync_count = 10_000, 2_000
    net = ScopeNet("a", "b")
    net.connect("a", "b")
    groups = [group(f"group.{seq}") for seq in range(group_count)]
    for g in groups:
        net.join("a", g)
    net.run()
    a, b = net["a"], net["b"]
    assert len(b.which_groups()) == group_count
    version = b.version
    last = group("thundering_herd")

    start = time.perf_counter()
    for _ in range(sync_count):
        (sync,) = a.peer_up("b")  # a's full map, built afresh each time
        assert b.handle("a", sync.message) == []
    net.join("a", last)
    net.run()
    elapsed = time.perf_counter() - start

    assert b.members(last) == {"a": 1}
    assert b.version == version + 1
    assert elapsed < 5.0, f"{sync_count} syncs + a join took {elapsed:.2f} s"

    # a sync that changes one group among 10,000
    changed = a.local_counts()
    changed[groups[5_000]] = 3
    b.monitor_scope("w")
    net.inject("a", "b", [SYNC, changed])
    assert b.members(groups[5_000]) == {"a": 3}
    assert b.members(groups[4_999]) == {"a": 1}
    assert b._remote["a"] == changed
    assert b.version == version + 2
    assert net.take_events("b") == [("join", groups[5_000], "a", 2)]
    # ... and one that drops a group among 10,000
    del changed[groups[0]]
    net.inject("a", "b", [SYNC, changed])
    assert b.members(groups[0]) == {}
    assert len(b.which_groups()) == group_count  # 10,000 - 1 + thundering_herd
    assert net.take_events("b") == [("leave", groups[0], "a", 1)]
    # the real resync restores a's true state
    net.peer_up("a", "b")
    net.run()
    assert b._remote["a"] == a.local_counts()
    assert b.members(groups[5_000]) == {"a": 1}
    assert b.members(groups[0]) == {"a": 1}


# ---------------------------------------------------------------------- monitor


def _monitor_test_impl(net: ScopeNet, g: bytes, initial, second) -> None:
    """pg's monitor_test_impl: ``initial(scope, watcher)`` / ``second(...)`` install watches."""

    def seen(node: str, watcher: str) -> list[tuple]:
        return [
            (e.kind, e.group, e.node, e.count) for e in net.events[node] if e.watcher == watcher
        ]

    a = net["a"]
    assert a.demonitor("nobody") is False
    initial(a, "w1")
    net.join("a", g)  # local join
    assert net.take_events("a") == [("join", g, "a", 1)]
    second(a, "w2")  # a second local watcher, which sees 1 local member at the start
    net.add("b")
    net.connect("a", "b")
    net.run()
    assert net.events == {"a": [], "b": []}  # a connect alone changes nothing
    second(net["b"], "w3")  # a watcher on the remote node's replica
    net.join("b", g, 2)  # remote join [RemotePid, RemotePid]
    net.run()
    assert net["a"].local_count(g) == 1
    net.leave("a", g)  # local leave
    net.run()
    net.leave("b", g)  # remote leave
    net.run()
    expected = [("join", g, "b", 2), ("leave", g, "a", 1), ("leave", g, "b", 1)]
    assert seen("a", "w1") == expected
    assert seen("a", "w2") == expected, "local monitor failed"
    assert seen("b", "w3") == expected, "remote monitor failed"
    assert len(net.events["a"]) == 6
    net.events["a"].clear()
    net.events["b"].clear()
    # remote leave via stop
    net.disconnect("a", "b")
    assert net.take_events("a", "w1") == [("leave", g, "b", 1)]
    assert net.take_events("b") == []
    # the extra local watcher goes away; only the original one still hears
    assert a.demonitor("w2") is True
    net.join("a", g)
    assert [(e.watcher, e.kind, e.node) for e in net.events["a"]] == [("w1", "join", "a")]
    net.leave("a", g)
    net.events["a"].clear()
    # demonitor
    assert a.demonitor("w1") is True
    assert a.demonitor("w1") is False
    net.join("a", g)
    net.join("a", group("elsewhere"))
    assert net.take_events("a") == []
    assert a._scope_watchers == []
    assert a._group_watchers == {}


def test_monitor_scope() -> None:
    """A scope watcher gets ordered join/leave events for local and remote changes."""

    def initial(scope: Overlay, watcher: str) -> None:
        assert scope.monitor_scope(watcher) == {}

    def second(scope: Overlay, watcher: str) -> None:
        assert scope.monitor_scope(watcher) == {group("monitor_scope"): {"a": 1}}

    _monitor_test_impl(ScopeNet("a"), group("monitor_scope"), initial, second)


def test_monitor() -> None:
    """The same with a watcher on one group, which hears nothing about other groups."""
    g = group("monitor")

    def initial(scope: Overlay, watcher: str) -> None:
        assert scope.monitor(watcher, g) == {}

    def second(scope: Overlay, watcher: str) -> None:
        assert scope.monitor(watcher, g) == {"a": 1}

    _monitor_test_impl(ScopeNet("a"), g, initial, second)
    net = ScopeNet("a")
    net["a"].monitor("w", g)
    net.join("a", group("other"))
    assert net.take_events("a") == []
    net.join("a", g)
    assert net.take_events("a") == [("join", g, "a", 1)]


def test_monitor_nonempty_scope() -> None:
    """monitor_scope returns the full table, local and remote, and only existing groups."""
    net = ScopeNet("a", "b")
    net.connect("a", "b")
    one = group("one")
    net.join("a", one)
    net.join("b", one)
    net.join("b", group("gone"))
    net.leave("b", group("gone"))
    net.run()
    a = net["a"]
    full = a.monitor_scope("w")
    assert full == {one: {"a": 1, "b": 1}}
    full[one]["a"] = 99  # the snapshot is a copy
    assert a.members(one) == {"a": 1, "b": 1}
    assert a.demonitor("w") is True
    assert a.monitor_scope("w") == {one: {"a": 1, "b": 1}}


def test_multi_monitor() -> None:
    """One watcher with 2 group watches and 1 scope watch: 2 joins -> exactly 4 events."""
    net = ScopeNet("a")
    a = net["a"]
    g1, g2 = group("multi_monitor_1"), group("multi_monitor_2")
    assert a.monitor("p", g1) == {}
    assert a.monitor("p", g2) == {}
    assert a.monitor_scope("p") == {}
    net.join("a", g1)
    net.join("a", g2)
    events = net.events["a"]
    assert len(events) == 4
    assert {e.watcher for e in events} == {"p"}
    assert [(e.kind, e.group) for e in events] == [
        ("join", g1),
        ("join", g1),
        ("join", g2),
        ("join", g2),
    ]
    # scope watchers are told before the group's watchers, whatever the watch order
    assert a.monitor("group-watcher", g1) == {"a": 1}
    assert a.monitor_scope("scope-watcher") == {g1: {"a": 1}, g2: {"a": 1}}
    events.clear()
    net.join("a", g1)
    assert [e.watcher for e in events] == ["p", "scope-watcher", "p", "group-watcher"]
    assert a.demonitor("group-watcher") is True
    assert a.demonitor("scope-watcher") is True
    # the watcher exits: pg holds no scope or group monitors afterwards
    assert a.demonitor("p") is True
    assert a._scope_watchers == []
    assert a._group_watchers == {}
    assert a.demonitor("p") is False


def test_scope_send_targets_known_peers_only() -> None:
    """A local change is broadcast once to every known peer, and to nobody else."""
    s = Overlay("a")
    s.peer_up("b")
    s.peer_up("c")
    s.peer_down("c")
    s.peer_up("d")
    actions = s.join(group("g"), 3)
    assert sorted(actions, key=lambda a: a.peer) == [
        OverlaySend("b", Update({group("g"): 3})),
        OverlaySend("d", Update({group("g"): 3})),
    ]
