"""The scope overlay: which nodes are interested in which groups, replicated like Erlang's pg
(whose *scope* is this replica; in zdps the scope is the cluster's name).

A *member* is one node's interest in a group, with a count of local subscribers. Each
node owns only its local counts; it tells every peer about each change and gives a new
peer a full sync. What a node knows about a peer is exactly what that peer last said:

* a local join or leave is sent to every known peer as an ``update`` of absolute counts;
* ``peer_up`` (pg's discover) sends the peer a full ``sync`` of the local counts, in
  ``sync_part``s when they are many and the peer speaks them;
* a ``sync`` from a peer *replaces* everything known about that peer, and so do the
  parts of one, each applied as it arrives (a gap abandons the rest: the anti-entropy
  below asks again);
* messages from a peer that is not known (not up, or already down) are ignored;
* ``peer_down`` makes every membership of that peer vanish;
* an empty group and a missing group are the same thing: a count of 0 is never stored.

Unlike pg, the overlay never asks a peer for its sync: ``peer_up`` only *sends* ours. The
membership layer therefore calls ``peer_up`` on both sides after every (re)discovery,
and delivers a peer's hello before anything else from it; a sync that arrives from a
peer not yet up is ignored like any other message from an unknown peer.

Anti-entropy: pg can trust Erlang distribution to report every lost connection, but a
ZeroMQ link can lose messages without either side noticing (a short partition, a
reconnect). So each node's pings carry ``local_digest()``, and a receiver whose
``peer_digest`` of the sender differs asks it for a fresh sync (``resync``). The
digests are sums kept up to date as counts change (scope_digests.py).

Watchers (pg's monitors) get a ``MemberEvent`` for every change they watch, in order.
Like pg, the overlay does no IO: every method returns the actions for the caller.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from itertools import repeat

from zdps.core.group_members import Members, as_dict, compact
from zdps.core.scope_digests import MODULUS, changed, entry_hash, sorted_digest, sum_digest
from zdps.topics import EXACT_SUFFIX, is_exact, is_queue_key, is_valid_group
from zdps.wire.gossip import SYNC_PART_GROUPS, Sync, SyncPart, Update, sync_parts

Counts = dict[bytes, int]


@dataclass(frozen=True, slots=True)
class OverlaySend:
    """Send ``message`` to the overlay of ``peer``."""

    peer: str
    message: Sync | SyncPart | Update


@dataclass(frozen=True, slots=True)
class MemberEvent:
    """A watched change: ``count`` members of ``node`` joined or left ``group``."""

    watcher: Hashable
    kind: str
    group: bytes
    node: str
    count: int


Action = OverlaySend | MemberEvent


@dataclass(slots=True)
class _PartedSync:
    """A sync arriving in parts: the part expected next (-1: abandoned), and the groups
    held for the peer that no part has named yet (they go when the last part comes)."""

    next: int = 0
    stale: set[bytes] = field(default_factory=set)


class NotJoined(KeyError):
    """A local leave of a group this node is not a member of (pg's ``not_joined``)."""


class Overlay:
    """One node's replica of the cluster's group membership."""

    def __init__(self, node: str, part_groups: int = SYNC_PART_GROUPS) -> None:
        self.node = node
        self.part_groups = part_groups  # a larger sync goes in parts, to who speaks them
        self._local: Counts = {}
        self._remote: dict[str, Counts] = {}
        self._groups: dict[bytes, Members] = {}
        self._prefix_lengths: dict[int, int] = {}
        self.queue_keys: set[bytes] = set()  # the groups that are queue groups (topics.py)
        self._all_watchers: list[Hashable] = []
        self._group_watchers: dict[bytes, list[Hashable]] = {}
        self.version = 0
        self.ignored = 0
        self._local_sum = 0  # scope_digests.py: the sum digest of the local counts
        self._peer_sums: dict[str, int] = {}  # ... and of what we hold for each peer
        self._local_sorted: str | None = None  # the sorted forms, made when asked
        self._peer_sorted: dict[str, str] = {}
        self._parted: dict[str, _PartedSync] = {}  # peer -> its sync whose parts arrive
        self.parts_lost = 0  # parted syncs abandoned for a missing part

    # ------------------------------------------------------------------ reads

    @property
    def peers(self) -> frozenset[str]:
        """Peers whose memberships this replica holds."""
        return frozenset(self._remote)

    def members(self, group: bytes) -> dict[str, int]:
        """Every node's count in ``group``; empty when nobody is a member."""
        return as_dict(self._groups.get(group))

    def local_count(self, group: bytes) -> int:
        """This node's own count in ``group``."""
        return self._local.get(group, 0)

    def which_groups(self) -> set[bytes]:
        """Groups with at least one member anywhere."""
        return set(self._groups)

    @property
    def groups(self) -> int:
        """How many groups have a member anywhere, without a copy of them (``status``)."""
        return len(self._groups)

    @property
    def local_groups(self) -> int:
        """How many groups this node itself is a member of."""
        return len(self._local)

    def which_local_groups(self) -> set[bytes]:
        """Groups this node itself is a member of."""
        return set(self._local)

    def local_counts(self) -> Counts:
        """A copy of the local counts, as sent in a sync."""
        return dict(self._local)

    def local_digest(self, sorted_form: bool = False) -> str:
        """Identifies this node's local counts (what peers should hold for it)."""
        if not sorted_form:
            return sum_digest(self._local_sum)
        if self._local_sorted is None:
            self._local_sorted = sorted_digest(self._local)
        return self._local_sorted

    def peer_digest(self, peer: str, sorted_form: bool = False) -> str | None:
        """Identifies what this replica holds for ``peer``; None if the peer is unknown."""
        known = self._remote.get(peer)
        if known is None:
            return None
        if not sorted_form:
            return sum_digest(self._peer_sums[peer])
        digest = self._peer_sorted.get(peer)
        if digest is None:
            digest = self._peer_sorted[peer] = sorted_digest(known)
        return digest

    def reach(self, topic: bytes) -> dict[str, int]:
        """Nodes a publish to ``topic`` must reach, with their subscriber counts.

        Sums the exact group and every prefix group that ``topic`` starts with.
        """
        groups = self._groups
        found: dict[str, int] = {}
        exact = groups.get(topic + EXACT_SUFFIX)
        if exact is not None:
            found.update(as_dict(exact))
        for length in self._prefix_lengths:
            if length <= len(topic):
                nodes = groups.get(topic[:length])
                if nodes is not None:
                    for node, count in as_dict(nodes).items():
                        found[node] = found.get(node, 0) + count
        return found

    # ------------------------------------------------------------------ local changes

    def join(self, group: bytes, count: int = 1) -> list[Action]:
        """Add ``count`` local members to ``group`` and tell every peer."""
        if count < 1:
            raise ValueError("count must be positive")
        if not is_valid_group(group):
            raise ValueError(f"invalid group {group!r}")
        new = self._local.get(group, 0) + count
        self._local[group] = new
        return self._local_changed(group, new - count, new)

    def leave(self, group: bytes, count: int = 1) -> list[Action]:
        """Remove ``count`` local members (at most as many as there are)."""
        if count < 1:
            raise ValueError("count must be positive")
        old = self._local.get(group, 0)
        if old == 0:
            raise NotJoined(group)
        removed = min(count, old)
        new = old - removed
        if new:
            self._local[group] = new
        else:
            del self._local[group]
        return self._local_changed(group, old, new)

    def _local_changed(self, group: bytes, old: int, new: int) -> list[Action]:
        self._local_sum = changed(self._local_sum, group, old, new)
        self._local_sorted = None
        actions: list[Action] = [OverlaySend(peer, Update({group: new})) for peer in self._remote]
        self._apply(group, self.node, new, new - old, actions)
        return actions

    # ------------------------------------------------------------------ peers

    def peer_up(self, peer: str, parts: bool = False) -> list[Action]:
        """A peer was discovered (or asked again): know it, send it our sync (in parts
        if it speaks them and there is more than one part's worth)."""
        if peer == self.node:
            return []
        if peer not in self._remote:
            self._remote[peer], self._peer_sums[peer] = {}, 0
        if parts and len(self._local) > self.part_groups:
            return [OverlaySend(peer, p) for p in sync_parts(self._local, self.part_groups)]
        return [OverlaySend(peer, Sync(dict(self._local)))]

    def peer_down(self, peer: str) -> list[Action]:
        """A peer died or left: all its memberships vanish."""
        known = self._remote.pop(peer, None)
        self._peer_sums.pop(peer, None)
        self._peer_sorted.pop(peer, None)
        self._parted.pop(peer, None)
        actions: list[Action] = []
        for group, count in (known or {}).items():
            self._apply(group, peer, 0, -count, actions)
        return actions

    def handle(self, peer: str, message: Sync | SyncPart | Update) -> list[Action]:
        """Apply a ``sync``, ``sync_part`` or ``update``; unknown peers are ignored."""
        counts = message.counts
        known = self._remote.get(peer)
        if known is None:
            self.ignored += 1
            return []
        actions: list[Action] = []
        kind = type(message)
        if kind is SyncPart:
            self._part(peer, known, message, actions)
            return actions
        parted = self._parted.get(peer)
        if kind is Sync:
            if parted is not None:
                del self._parted[peer]  # a whole sync replaces the parted one
            if counts == known:
                return actions  # a repeated sync is cheap: no work
            if not known:  # a new peer's first: every group is new (a million, at times)
                self._add_new(peer, counts, actions)
                return actions
            for group in [g for g in known if g not in counts]:
                self._set_remote(peer, known, group, 0, actions)
        elif parted is not None:
            parted.stale.difference_update(counts)  # newer than any part
        for group, count in counts.items():
            self._set_remote(peer, known, group, count, actions)
        return actions

    def _part(self, peer: str, known: Counts, message: SyncPart, actions: list[Action]) -> None:
        """One part of a sync: its groups set as they come, and with the last one, the
        groups no part named removed. A part out of turn (one went missing: a link that
        reconnected) abandons the sync; the next ping's digest differs, and asks again."""
        parted = self._parted.get(peer)
        if message.part == 0:
            parted = self._parted[peer] = _PartedSync(stale=set(known))
        elif parted is None or message.part != parted.next:
            if parted is None or parted.next >= 0:  # counted once a sync
                self.parts_lost += 1
            if message.last:
                self._parted.pop(peer, None)
            else:
                self._parted[peer] = _PartedSync(next=-1)  # abandoned: its parts ignored
            return
        parted.next += 1
        counts = message.counts
        if parted.stale:
            parted.stale.difference_update(counts)
        if known.keys().isdisjoint(counts):
            self._add_new(peer, counts, actions)
        else:
            for group, count in counts.items():
                self._set_remote(peer, known, group, count, actions)
        if message.last:
            del self._parted[peer]
            known = self._remote[peer]  # _add_new may have adopted a new dict
            for group in parted.stale:
                self._set_remote(peer, known, group, 0, actions)

    def _add_new(self, peer: str, counts: Counts, actions: list[Action]) -> None:
        """Groups of a peer we held none of for it (a new peer's sync, a part), in bulk:
        if we held nothing, ``counts`` becomes what we hold (the very dict: no copy for
        the allocator to keep); the groups nobody else holds go into the table at once,
        the others, and all when someone watches, one by one (``_apply``)."""
        new = counts if 0 not in counts.values() else {g: c for g, c in counts.items() if c}
        known = self._remote[peer]
        if known:
            known.update(new)
        else:
            self._remote[peer] = new
        added = sum(map(entry_hash, new, new.values()))
        self._peer_sums[peer] = (self._peer_sums[peer] + added) % MODULUS
        self._peer_sorted.pop(peer, None)
        if self._all_watchers or self._group_watchers:
            for group, count in new.items():
                self._apply(group, peer, count, count, actions)
            return
        groups = self._groups
        shared = {g: groups[g] for g in new if g in groups} if groups else {}
        groups.update(zip(new, repeat(peer)))  # as if none were shared, then mend those
        groups.update(shared)
        for group in [g for g in new if g[-1:] != EXACT_SUFFIX and g not in shared]:
            self._classify(group)
        for group in [g for g, c in new.items() if c != 1 and g not in shared]:
            groups[group] = (peer, new[group])  # compact's form
        self.version += len(new) - len(shared)
        for group in shared:
            self._apply(group, peer, new[group], new[group], actions)

    def _classify(self, group: bytes) -> None:
        """A group that came into the table: a queue group, or a prefix's length."""
        if is_queue_key(group):
            self.queue_keys.add(group)
        elif not is_exact(group):
            self._prefix_lengths[len(group)] = self._prefix_lengths.get(len(group), 0) + 1

    def _set_remote(
        self, peer: str, known: Counts, group: bytes, count: int, actions: list[Action]
    ) -> None:
        old = known.get(group, 0)
        if count == old:
            return
        self._peer_sums[peer] = changed(self._peer_sums[peer], group, old, count)
        self._peer_sorted.pop(peer, None)
        if count:
            known[group] = count
        else:
            del known[group]
        self._apply(group, peer, count, count - old, actions)

    # ------------------------------------------------------------------ the replicated table

    def _apply(self, group: bytes, node: str, count: int, delta: int, actions: list) -> None:
        """Set ``node``'s count in ``group`` in the shared table and notify watchers."""
        members = self._groups.get(group)
        if count:
            if members is None:
                self._groups[group] = node if count == 1 else (node, count)  # compact's
                self._classify(group)
            else:
                nodes = as_dict(members)
                nodes[node] = count
                self._groups[group] = compact(nodes)
        elif members is not None:
            nodes = as_dict(members)
            nodes.pop(node, None)
            if nodes:
                self._groups[group] = compact(nodes)
            else:
                del self._groups[group]
                self.queue_keys.discard(group)
                if not is_exact(group):
                    left = self._prefix_lengths[len(group)] - 1
                    if left:
                        self._prefix_lengths[len(group)] = left
                    else:
                        del self._prefix_lengths[len(group)]
        self.version += 1
        watching = self._group_watchers.get(group)
        if self._all_watchers or watching:
            kind = "join" if delta > 0 else "leave"
            watchers = self._all_watchers + (watching or [])
            actions.extend(MemberEvent(w, kind, group, node, abs(delta)) for w in watchers)

    # ------------------------------------------------------------------ monitors

    def monitor_overlay(self, watcher: Hashable) -> dict[bytes, dict[str, int]]:
        """Watch every group (pg's ``monitor_scope``); returns the current table."""
        self._all_watchers.append(watcher)
        return {group: as_dict(members) for group, members in self._groups.items()}

    def monitor(self, watcher: Hashable, group: bytes) -> dict[str, int]:
        """Watch one group; returns its current members."""
        self._group_watchers.setdefault(group, []).append(watcher)
        return self.members(group)

    def demonitor(self, watcher: Hashable) -> bool:
        """Stop every watch held by ``watcher``; False if it held none."""
        found = watcher in self._all_watchers
        self._all_watchers = [w for w in self._all_watchers if w != watcher]
        for group in list(self._group_watchers):
            watchers = self._group_watchers[group]
            if watcher in watchers:
                found = True
                remaining = [w for w in watchers if w != watcher]
                if remaining:
                    self._group_watchers[group] = remaining
                else:
                    del self._group_watchers[group]
        return found
