"""Hypothesis properties of the scope overlay, driven through the in-memory OverlayNet.

* Convergence: after any mix of joins, leaves, connects, netsplits, one-sided
  peer_downs (flaps), held links, partial deliveries, forced resyncs and scope
  restarts on 2-4 nodes, healing every link and running to quiescence leaves every
  node with the true local counts of every node: no ghosts, no losses.
* At every step: each node's local counts are the true ones; ``reach`` equals the
  brute-force sum over exact and prefix groups; ``version`` increases exactly when a
  node's table changes; replaying a scope watcher's events rebuilds the table.
* A peer's view is exactly what the peer last said, however syncs, syncs in parts
  (some with a part lost) and updates mix.
Both with whole syncs and with every sync of more than one group in parts.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.overlay_net import OverlayNet, Table, brute_reach
from zdps.core.overlay import NotJoined, Overlay
from zdps.core.scope_digests import MODULUS, entry_hash, sum_digest
from zdps.topics import exact_group, prefix_group
from zdps.wire import SYNC, UPDATE
from zdps.wire.gossip import sync_parts
from zdps.wire.messages import decode_message

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

# A step is (kind, x, y, n); each kind reads the numbers it needs. Joins and leaves
# are listed several times so that scripts build up real membership.
KINDS = [
    *["join"] * 4,
    *["leave"] * 3,
    *["connect"] * 2,
    "disconnect",
    "flap",
    "hold",
    "release",
    "resync",
    *["deliver"] * 2,
    "run",
    "restart",
]
steps = st.tuples(
    st.sampled_from(KINDS), st.integers(0, 3), st.integers(0, len(GROUPS) - 1), st.integers(1, 3)
)


class Checked:
    """A OverlayNet with a model of the true local counts, checked after every step."""

    def __init__(self, size: int, part_groups: int | None = None) -> None:
        self.names = NODES[:size]
        self.net = OverlayNet(*self.names, part_groups=part_groups)
        self.truth: dict[str, dict[bytes, int]] = {n: {} for n in self.names}
        self.known: dict[str, set[str]] = {n: set() for n in self.names}
        self.flapped: set[frozenset[str]] = set()  # pairs that need a new handshake
        self.replay: dict[str, Table] = {}
        self.before: dict[str, tuple[Table, int]] = {}
        for name in self.names:
            self.watch(name)
        self.snapshot()

    def watch(self, name: str) -> None:
        self.replay[name] = self.net[name].monitor_overlay("w")
        self.net.events[name].clear()

    def snapshot(self) -> None:
        self.before = {n: (self.net.table(n), self.net[n].version) for n in self.names}

    def check(self, restarted: str | None = None) -> None:
        """Everything that must hold after any single step."""
        net = self.net
        for name in self.names:
            scope = net[name]
            table = net.table(name)
            assert scope.peers == self.known[name]
            assert scope.local_counts() == self.truth[name]
            assert {g: n[name] for g, n in table.items() if name in n} == self.truth[name]
            members = {node for nodes in table.values() for node in nodes}
            assert members <= self.known[name] | {name}  # nobody it does not know
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

    def connect(self, a: str, b: str) -> None:
        self.net.connect(a, b)
        self.known[a].add(b)
        self.known[b].add(a)
        self.flapped.discard(frozenset((a, b)))

    def disconnect(self, a: str, b: str) -> None:
        self.net.disconnect(a, b)
        self.known[a].discard(b)
        self.known[b].discard(a)
        self.flapped.discard(frozenset((a, b)))

    def apply(self, step: tuple[str, int, int, int]) -> None:
        net = self.net
        kind, x, y, n = step
        a, b = self.names[x % len(self.names)], self.names[y % len(self.names)]
        local = self.truth[a]
        if kind == "join":
            g = GROUPS[y]
            net.join(a, g, n)
            local[g] = local.get(g, 0) + n
        elif kind == "leave":
            # mostly a group the node is in; otherwise any group, which may be NotJoined
            g = sorted(local)[y % len(local)] if local and n < 3 else GROUPS[y]
            if g not in local:
                with pytest.raises(NotJoined):
                    net.leave(a, g, n)
            else:
                net.leave(a, g, n)
                local[g] -= min(n, local[g])
                if not local[g]:
                    del local[g]
        elif kind == "deliver":
            for _ in range(2 * n):
                if not self.deliver_one():
                    break
        elif kind == "run":
            while self.deliver_one():
                pass
        elif kind == "restart":
            neighbours = net.neighbours(a)
            net.restart(a)  # its neighbours see it go down and come back
            self.truth[a] = {}
            self.known[a] = set(neighbours)
            for peer in neighbours:
                self.known[peer].add(a)
                self.flapped.discard(frozenset((a, peer)))
            self.watch(a)
            self.check(restarted=a)
        elif a == b:
            return
        elif kind == "connect" and not net.connected(a, b):
            self.connect(a, b)
        elif kind == "disconnect" and net.connected(a, b):
            self.disconnect(a, b)
        elif kind == "flap":
            # a drops b (say, a missed heartbeat) while the link still delivers b's messages
            net.peer_down(a, b)
            self.known[a].discard(b)
            self.flapped.add(frozenset((a, b)))
        elif kind == "hold":
            net.hold(a, b)
        elif kind == "release":
            net.release(a, b)
        elif kind == "resync" and net.connected(a, b):
            net.peer_up(a, b)  # a forced discover: a sends b a full sync again
            self.known[a].add(b)
        self.check()

    def heal(self) -> None:
        """Handshake every pair that is down or flapped, release every link, and run.

        A pair where one side saw ``peer_down`` needs a full new handshake (both
        sides' ``peer_up``): the scope has no way to ask a peer for its sync, so a
        one-sided ``peer_up`` after a flap cannot restore what was dropped.
        """
        for i, a in enumerate(self.names):
            for b in self.names[i + 1 :]:
                self.net.release(a, b)
                self.net.release(b, a)
                if self.net.connected(a, b) and frozenset((a, b)) not in self.flapped:
                    continue
                if self.net.connected(a, b):
                    self.disconnect(a, b)
                    self.check()
                self.connect(a, b)
                self.check()
        while self.deliver_one():
            pass
        assert self.net.pending() == 0


@pytest.mark.parametrize("part_groups", [None, 1], ids=["whole", "parts"])
@settings(max_examples=500, deadline=None)
@given(size=st.integers(2, 4), script=st.lists(steps, max_size=60))
def test_healed_cluster_converges_to_true_counts(
    part_groups: int | None, size: int, script: list[tuple[str, int, int, int]]
) -> None:
    """After healing, every node sees every node's true counts: no ghosts, no losses."""
    checked = Checked(size, part_groups)
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
PARTS, PARTS_GAP = "parts", "parts with the second lost"
messages = st.lists(
    st.tuples(st.sampled_from([SYNC, UPDATE, PARTS, PARTS_GAP]), counts), max_size=12
)


def handed(scope: Overlay, kind: str, message: dict[bytes, int]) -> list:
    """``message`` handed to ``scope`` from "p" as ``kind``: a whole sync or update, or
    a sync in parts of two groups, the second part lost if ``kind`` is PARTS_GAP."""
    if kind in (SYNC, UPDATE):
        return scope.handle("p", decode_message([kind, dict(message)]))
    parts = sync_parts(dict(message), 2)
    if kind == PARTS_GAP:
        del parts[1:2]
    actions = []
    for part in parts:
        actions += scope.handle("p", decode_message(["sync_part", part.body()]))
    return actions


@settings(max_examples=300, deadline=None)
@given(local=counts, script=messages, topics=st.lists(topic_text, max_size=10))
def test_peer_view_is_what_the_peer_last_said(
    local: dict[bytes, int], script: list[tuple[str, dict[bytes, int]]], topics: list[bytes]
) -> None:
    """A sync replaces, an update overrides; zeros are never stored; reach stays exact."""
    scope = Overlay("me")
    for g, count in local.items():
        if count:
            scope.join(g, count)
    scope.peer_up("p")
    model: dict[bytes, int] = {}
    lost = 0
    for kind, message in script:
        version = scope.version
        actions = handed(scope, kind, message)
        if kind in (SYNC, PARTS) or (kind == PARTS_GAP and len(message) <= 2):
            new = {g: c for g, c in message.items() if c}
        elif kind == PARTS_GAP:  # part 0 applied, the rest abandoned
            first = dict(list(message.items())[:2])
            new = {g: c for g, c in {**model, **first}.items() if c}
            lost += len(message) > 4  # a third part came out of turn
        else:
            new = {g: c for g, c in {**model, **message}.items() if c}
        changed = sum(1 for g in set(model) | set(new) if model.get(g) != new.get(g))
        model = new
        assert actions == []  # nobody watches
        assert (scope.version > version) if changed else (scope.version == version)
        assert scope._remote["p"] == model
        assert scope.parts_lost == lost
        total = (
            sum(map(entry_hash, model, model.values())) % MODULUS
        )  # the first sync's bulk sum too
        assert scope.peer_digest("p", False) == sum_digest(total)
        table = {g: scope.members(g) for g in scope.which_groups()}
        expected: Table = {}
        for node, counts_of_node in (("me", local), ("p", model)):
            for g, c in counts_of_node.items():
                if c:
                    expected.setdefault(g, {})[node] = c
        assert table == expected
        for topic in [*topics, b"a", b"ab"]:
            assert scope.reach(topic) == brute_reach(table, topic)
    # the same sync again is a no-op
    version = scope.version
    assert scope.handle("p", decode_message([SYNC, dict(model)])) == []
    assert scope.version == version
    # and the peer going down removes exactly its part
    scope.peer_down("p")
    assert {g: scope.members(g) for g in scope.which_groups()} == {
        g: {"me": c} for g, c in local.items() if c
    }
