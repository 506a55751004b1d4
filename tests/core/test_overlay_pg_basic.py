"""Erlang OTP's pg_SUITE, ported to zdps's sans-IO scope overlay: pg's groups ``basic``,
``performance`` and ``monitor`` (its ``cluster`` group: test_overlay_pg_cluster.py).

Each test keeps the name of the pg_SUITE case it ports (lib/kernel/test/pg_SUITE.erl).
The mapping, from pg to zdps:

* a pg scope process is one ``Overlay(node)``; a pid joined to a group is one unit of
  the node's local count in that group (a pid joined twice is a count of 2);
* nodeup + discover is ``peer_up`` on both sides (``OverlayNet.connect``); a netsplit
  or a stopped remote scope is ``peer_down`` (``OverlayNet.disconnect``);
* a killed local member is a local leave of its count; a restarted scope is a new
  ``Overlay`` with the same node id, which its peers see go down and come back;
* pg's ``sync(GS)`` barriers become ``OverlayNet.run()``: deliver until quiescent;
* pg's monitor messages ``{Ref, join|leave, Group, Pids}`` are ``MemberEvent``s.

``errors`` becomes malformed input raising ProtocolError (there is no server to
crash). Not ported: ``protocol_upgrade`` (there is no versioned discover) and
``monitor_self`` (a watcher is a plain key, it cannot die). Extra cases that pg does
not have carry a descriptive name.
"""

from __future__ import annotations

import time

import pytest

from tests.core.overlay_net import OverlayNet, group, sends
from zdps.core.overlay import NotJoined, Overlay, OverlaySend
from zdps.wire import SYNC, UPDATE, ProtocolError
from zdps.wire.gossip import Update
from zdps.wire.messages import decode_message

pytestmark = pytest.mark.timeout(60)


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
    net = OverlayNet("a", "b")
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
    net = OverlayNet("a", "b")
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
    net = OverlayNet("a", "b")
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
    net = OverlayNet("a", "b")
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


# ---------------------------------------------------------------------- performance


def test_thundering_herd() -> None:
    """2,000 identical 10,000-group syncs then a join must take < 5 s (pg's timetrap).

    A sync that changes one group among the 10,000 must still be applied exactly.
    """
    group_count, sync_count = 10_000, 2_000
    net = OverlayNet("a", "b")
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
    b.monitor_overlay("w")
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


def _monitor_test_impl(net: OverlayNet, g: bytes, initial, second) -> None:
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
    assert a._all_watchers == []
    assert a._group_watchers == {}


def test_monitor_scope() -> None:
    """A scope watcher gets ordered join/leave events for local and remote changes."""

    def initial(scope: Overlay, watcher: str) -> None:
        assert scope.monitor_overlay(watcher) == {}

    def second(scope: Overlay, watcher: str) -> None:
        assert scope.monitor_overlay(watcher) == {group("monitor_overlay"): {"a": 1}}

    _monitor_test_impl(OverlayNet("a"), group("monitor_overlay"), initial, second)


def test_monitor() -> None:
    """The same with a watcher on one group, which hears nothing about other groups."""
    g = group("monitor")

    def initial(scope: Overlay, watcher: str) -> None:
        assert scope.monitor(watcher, g) == {}

    def second(scope: Overlay, watcher: str) -> None:
        assert scope.monitor(watcher, g) == {"a": 1}

    _monitor_test_impl(OverlayNet("a"), g, initial, second)
    net = OverlayNet("a")
    net["a"].monitor("w", g)
    net.join("a", group("other"))
    assert net.take_events("a") == []
    net.join("a", g)
    assert net.take_events("a") == [("join", g, "a", 1)]


def test_monitor_nonempty_scope() -> None:
    """monitor_overlay returns the full table, local and remote, and only existing groups."""
    net = OverlayNet("a", "b")
    net.connect("a", "b")
    one = group("one")
    net.join("a", one)
    net.join("b", one)
    net.join("b", group("gone"))
    net.leave("b", group("gone"))
    net.run()
    a = net["a"]
    full = a.monitor_overlay("w")
    assert full == {one: {"a": 1, "b": 1}}
    full[one]["a"] = 99  # the snapshot is a copy
    assert a.members(one) == {"a": 1, "b": 1}
    assert a.demonitor("w") is True
    assert a.monitor_overlay("w") == {one: {"a": 1, "b": 1}}


def test_multi_monitor() -> None:
    """One watcher with 2 group watches and 1 scope watch: 2 joins -> exactly 4 events."""
    net = OverlayNet("a")
    a = net["a"]
    g1, g2 = group("multi_monitor_1"), group("multi_monitor_2")
    assert a.monitor("p", g1) == {}
    assert a.monitor("p", g2) == {}
    assert a.monitor_overlay("p") == {}
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
    assert a.monitor_overlay("scope-watcher") == {g1: {"a": 1}, g2: {"a": 1}}
    events.clear()
    net.join("a", g1)
    assert [e.watcher for e in events] == ["p", "scope-watcher", "p", "group-watcher"]
    assert a.demonitor("group-watcher") is True
    assert a.demonitor("scope-watcher") is True
    # the watcher exits: pg holds no scope or group monitors afterwards
    assert a.demonitor("p") is True
    assert a._all_watchers == []
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
