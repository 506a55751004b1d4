"""Hypothesis properties of the scope overlay, driven through the in-memory ScopeNet.

* Convergence: after any mix of joins, leaves, connects, netsplits, held links,
  partial deliveries, forced resyncs and scope restarts on 2-4 nodes, healing every
  link and running to quiescence leaves every node with the true local counts of
  every node: no ghosts, no losses.
* At every step: each node's local counts are the true ones; ``reach`` equals the
  brute-force sum over exact and prefix groups; ``version`` increases exactly when a
  node's table changes; replaying a scope watcher's events rebuilds the table.
* A peer's view is exactly what the peer last said, however syncs and updates mix.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.scope_net import ScopeNet, Table, brute_reach
from zdps.core.scope import NotJoined, Scope
from zdps.topics import exact_group, prefix_group
from zdps.wire import SYNC, UPDATE

pytestmark = pytest.mark.timeout(60)

NODES = ["n0", "n1", "n2", "n3"]
GROUPS = [
    exact_group("a"),
    exact_group("ab"),
    exact_group("b.x"),
    prefix_group(""),
    prefix_group("a"),
    prefix_group("ab"),
    prefix_group("b."),
]
TOPICS = [b"a", b"ab", b"abc", b"b", b"b.", b"b.x", b"c"]

node_index = st.integers(0, 3)
steps = st.one_of(
    st.tuples(st.just("join"), node_index, st.integers(0, len(GROUPS) - 1), st.integers(1, 3)),
    st.tuples(st.just("leave"), node_index, st.integers(0, len(GROUPS) - 1), st.integers(1, 3)),
    st.tuples(st.just("connect"), node_index, node_index),
    st.tuples(st.just("disconnect"), node_index, node_index),
    st.tuples(st.just("hold"), node_index, node_index),
    st.tuples(st.just("release"), node_index, node_index),
    st.tuples(st.just("resync"), node_index, node_index),
    st.tuples(st.just("deliver"), st.integers(1, 6)),
    st.tuples(st.just("run")),
    st.tuples(st.just("restart"), node_index),
)


class Checked:
    """A ScopeNet with a model of the true local counts, checked after every step."""

    def __init__(self, size: int) -> None:
        self.names = NODES[:size]
        self.net = ScopeNet(*self.names)
        self.truth: dict[str, dict[bytes, int]] = {n: {} for n in self.names}
        self.replay: dict[str, Table] = {}
        self.before: dict[str, tuple[Table, int]] = {}
        for name in self.names:
            self.watch(name)
        self.snapshot()

    def watch(self, name: str) -> None:
        self.replay[name] = self.net[name].monitor_scope("w")
        self.net.events[name].clear()

    def snapshot(self) -> None:
        self.before = {n: (self.net.table(n), self.net[n].version) for n in self.names}

    def check(self, restarted: str | None = None) -> None:
        """Everything that must hold after any single step."""
        net = self.net
        for name in self.names:
            scope = net[name]
            table = net.table(name)
            assert scope.local_counts() == self.truth[name]
            assert {g: n[name] for g, n in table.items() if name in n} == self.truth[name]
            assert 0 not in [c for nodes in table.values() for c in nodes.values()]
            for topic in TOPICS:
                assert scope.reach(topic) == brute_reach(table, topic), (name, topic)
            old_table, old_version = self.before[name]
            if name != restarted:
                if table != old_table:
                    assert scope.version > old_version, (name, old_table, table)
                else:
                    assert scope.version == old_version, name
            replay = self.replay[name]
            for e in net.events[name]:
                assert e.watcher == "w"
                nodes = replay.setdefault(e.group, {})
                nodes[e.node] = nodes.get(e.node, 0) + (e.count if e.kind == "join" else -e.count)
                assert e.count > 0 and nodes[e.node] >= 0
                if not nodes[e.node]:
                    del nodes[e.node]
                if not nodes:
                    del replay[e.group]
            net.events[name].clear()
            assert replay == table, name
        self.snapshot()

    def deliver_one(self) -> bool:
        if self.net.step() is None:
            return False
        self.check()
        return True

    def apply(self, step: tuple) -> None:
        net, kind = self.net, step[0]
        size = len(self.names)
        if kind in ("join", "leave"):
            name, g, count = self.names[step[1] % size], GROUPS[step[2]], step[3]
            local = self.truth[name]
            if kind == "join":
                net.join(name, g, count)
                local[g] = local.get(g, 0) + count
            elif g not in local:
                with pytest.raises(NotJoined):
                    net.leave(name, g, count)
            else:
                net.leave(name, g, count)
                local[g] -= min(count, local[g])
                if not local[g]:
                    del local[g]
            self.check()
        elif kind == "deliver":
            for _ in range(step[1]):
                if not self.deliver_one():
                    break
        elif kind == "run":
            while self.deliver_one():
                pass
        elif kind == "restart":
            name = self.names[step[1] % size]
            net.restart(name)
            self.truth[name] = {}
            self.watch(name)
            self.check(restarted=name)
        else:
            a, b = self.names[step[1] % size], self.names[step[2] % size]
            if a == b:
                return
            if kind == "connect" and not net.connected(a, b):
                net.connect(a, b)
            elif kind == "disconnect" and net.connected(a, b):
                net.disconnect(a, b)
            elif kind == "hold":
                net.hold(a, b)
            elif kind == "release":
                net.release(a, b)
            elif kind == "resync" and net.connected(a, b):
                net.peer_up(a, b)  # a forced discover: a sends b a full sync again
            self.check()

    def heal(self) -> None:
        """Connect every pair, release every link, and run to quiescence."""
        for i, a in enumerate(self.names):
            for b in self.names[i + 1 :]:
                self.net.release(a, b)
                self.net.release(b, a)
                if not self.net.connected(a, b):
                    self.net.connect(a, b)
                    self.check()
        while self.deliver_one():
            pass
        assert self.net.pending() == 0


@settings(max_examples=400, deadline=None)
@given(size=st.integers(2, 4), script=st.lists(steps, max_size=60))
def test_healed_cluster_converges_to_true_counts(size: int, script: list[tuple]) -> None:
    """After healing, every node sees every node's true counts: no ghosts, no losses."""
    checked = Checked(size)
    for step in script:
        checked.apply(step)
    checked.heal()
    net, truth = checked.net, checked.truth
    expected: Table = {}
    for name, local in truth.items():
        for g, count in local.items():
            expected.setdefault(g, {})[name] = count
    for name in checked.names:
        scope = net[name]
        assert net.table(name) == expected, name
        for g in GROUPS:
            assert scope.members(g) == expected.get(g, {})
        assert scope.which_groups() == set(expected)
        assert scope.peers == frozenset(checked.names) - {name}
        for topic in TOPICS:
            assert scope.reach(topic) == brute_reach(expected, topic)


topic_text = st.text(alphabet="ab.", min_size=1, max_size=4).map(str.encode)
group_bytes = st.one_of(
    topic_text.map(lambda t: t + b"\x00"),
    st.text(alphabet="ab.", max_size=4).map(str.encode),
)
counts = st.dictionaries(group_bytes, st.integers(0, 3), max_size=8)
messages = st.lists(st.tuples(st.sampled_from([SYNC, UPDATE]), counts), max_size=12)


@settings(max_examples=300, deadline=None)
@given(local=counts, script=messages, topics=st.lists(topic_text, max_size=10))
def test_peer_view_is_what_the_peer_last_said(
    local: dict[bytes, int], script: list[tuple[str, dict[bytes, int]]], topics: list[bytes]
) -> None:
    """A sync replaces, an update overrides; zeros are never stored; reach stays exact."""
    scope = Scope("me")
    for g, count in local.items():
        if count:
            scope.join(g, count)
    scope.peer_up("p")
    model: dict[bytes, int] = {}
    for kind, message in script:
        version = scope.version
        actions = scope.handle("p", [kind, dict(message)])
        if kind == SYNC:
            new = {g: c for g, c in message.items() if c}
        else:
            new = {g: c for g, c in {**model, **message}.items() if c}
        changed = sum(1 for g in set(model) | set(new) if model.get(g) != new.get(g))
        model = new
        assert actions == []  # nobody watches
        assert (scope.version > version) if changed else (scope.version == version)
        assert scope._remote["p"] == model
        table = {g: scope.members(g) for g in scope.which_groups()}
        for g in set(local) | set(model):
            expected = {n: c for n, c in (("me", local.get(g, 0)), ("p", model.get(g, 0))) if c}
            assert table.get(g, {}) == expected
        for topic in [*topics, b"a", b"ab"]:
            assert scope.reach(topic) == brute_reach(table, topic)
    # the same sync again is a no-op
    version = scope.version
    assert scope.handle("p", [SYNC, dict(model)]) == []
    assert scope.version == version
    # and the peer going down removes exactly its part
    scope.peer_down("p")
    assert {g: scope.members(g) for g in scope.which_groups()} == {
        g: {"me": c} for g, c in local.items() if c
    }
