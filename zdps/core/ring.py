"""Consistent hash ring that names each topic's *owner* among the live nodes.

Every publish is routed through its topic's owner, so all nodes must agree on who
that is without talking to each other: any two nodes that hold the same set of live
node ids must compute the identical owner for every topic. The ring is therefore a
pure function of the node set (and ``vnodes``), independent of insertion order, and
its hash is stable across processes, machines and Python versions: BLAKE2b with an
8-byte digest read as a big-endian integer. Python's ``hash()`` is never used,
because it is salted per process (``PYTHONHASHSEED``).

Consistent hashing keeps churn small: when a node joins, only the topics it now owns
move (about ``1/len(nodes)`` of them), and when it leaves, only its topics move.

The module is sans-IO and not thread-safe; the daemon owns one ring per event loop.
"""

from __future__ import annotations

import copy
import hashlib
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from operator import itemgetter

# 256 points per node keeps the busiest of 3 nodes within ~1.1x the mean share of
# topics (the target is 1.25x) and a joining 4th node takes 25% +/- ~1.5% of the
# topics, while a rebuild for a dozen nodes is only ~3,000 hashes. Fewer points
# make the shares uneven (the spread shrinks like 1/sqrt(vnodes)); many more buy
# little balance for proportionally slower rebuilds. Every node of a cluster must
# use the same value, or their owners will disagree.
DEFAULT_VNODES = 256

# owner() caches topic -> owner; the cache is dropped once it grows past this many
# entries so that a stream of distinct topics cannot grow memory without bound.
OWNER_CACHE_LIMIT = 1_000_000

# Topics and node ids reaching the ring are valid Unicode (check_topic and msgpack
# reject lone surrogates); surrogatepass only keeps owner() total for direct callers.
_ENCODING_ERRORS = "surrogatepass"


def node_set_digest(nodes: Iterable[str]) -> str:
    """Short hex id of a set of node ids: equal sets give equal digests in any order.

    Each id is length-prefixed so that no two different sets encode to the same bytes.
    Membership compares views with it, and ``zdps status`` shows it for the ring.
    """
    h = hashlib.blake2b(digest_size=8)
    for node in sorted(set(nodes)):
        raw = node.encode("utf-8", _ENCODING_ERRORS)
        h.update(len(raw).to_bytes(4, "big"))
        h.update(raw)
    return h.hexdigest()


def _point(data: bytes) -> int:
    """Position of ``data`` on the ring: stable everywhere, unlike ``hash()``."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _node_points(node: str, vnodes: int) -> list[int]:
    """The ring positions of ``node``'s virtual nodes."""
    return [_point(f"{node}#{i}".encode("utf-8", _ENCODING_ERRORS)) for i in range(vnodes)]


def _spliced(points: array, slots: array, edits: list[tuple[int, int, int]]) -> tuple[array, array]:
    """New ``points`` and ``slots`` with ``edits`` (sorted by index) made: ``(index, -1,
    _)`` drops the entry at ``index``, ``(index, slot, point)`` inserts one before it. The
    runs of entries in between are copied whole (memcpy), not one by one."""
    new_points, new_slots = array("Q"), array("I")
    start = 0
    for index, slot, point in edits:
        if index > start:
            new_points += points[start:index]
            new_slots += slots[start:index]
            start = index
        if slot < 0:
            start = index + 1
        else:
            new_points.append(point)
            new_slots.append(slot)
    new_points += points[start:]
    new_slots += slots[start:]
    return new_points, new_slots


class HashRing:
    """The set of live nodes, and which of them owns each topic.

    Lookups happen on every publish, so ``owner`` is a cached bisect over the points
    sorted by (point, node id). A membership change re-sorts nothing: ``add`` merges the
    node's points into the sorted arrays and ``remove`` cuts them out, a bisect per point
    and one copy of the arrays (memcpy): about a millisecond at 1,000 nodes, where a
    full sort took 0.3-0.45 s. Points are 64-bit integers in an ``array('Q')`` and each
    point's node a slot in ``_names`` (``array('I')``): 12 bytes a point, where lists of
    Python ints took 60.
    """

    def __init__(self, nodes: Iterable[str] = (), vnodes: int = DEFAULT_VNODES) -> None:
        """Build a ring of ``nodes``, each placed at ``vnodes`` points.

        Raises ValueError if ``vnodes`` < 1 or a node id is empty.
        """
        if isinstance(vnodes, bool) or not isinstance(vnodes, int):
            raise TypeError(f"vnodes must be an int, not {type(vnodes).__name__}")
        if vnodes < 1:
            raise ValueError(f"vnodes must be at least 1, got {vnodes}")
        self._vnodes = vnodes
        unique = list(dict.fromkeys(nodes))
        for node in unique:
            self._check_node(node)
        self._nodes = frozenset(unique)
        # Parallel arrays sorted by (point, node id): bisect on the first, read the
        # second. Both are replaced, never changed in place, so copies may share them.
        self._points = array("Q")
        self._slots = array("I")  # the slot in ``_names`` of each point's node
        self._names: list[str] = []  # slot -> node id (stale in a free slot)
        self._slot: dict[str, int] = {}  # node id -> slot, for the nodes placed
        self._free: list[int] = []
        self._cache: dict[str, str] = {}
        self._cache_limit = OWNER_CACHE_LIMIT
        self._place(unique, [])

    @property
    def vnodes(self) -> int:
        """Points per node; must match across the cluster for owners to agree."""
        return self._vnodes

    @property
    def nodes(self) -> frozenset[str]:
        """The live node ids currently on the ring."""
        return self._nodes

    def add(self, node: str) -> bool:
        """Put ``node`` on the ring; False (and no change) if it is already there."""
        self._check_node(node)
        if node in self._nodes:
            return False
        self._nodes = self._nodes | {node}
        self._place([node], [])
        return True

    def remove(self, node: str) -> bool:
        """Take ``node`` off the ring; False (and no change) if it is not there."""
        if node not in self._nodes:
            return False
        self._nodes = self._nodes - {node}
        self._place([], [node])
        return True

    def with_nodes(self, nodes: Iterable[str]) -> HashRing:
        """The ring of ``nodes``, made from this one by adding and removing the nodes that
        differ (``Replication.handoffs``' ring before a change, ``Drain``'s after it): a
        copy's cost, not a full build's."""
        nodes = frozenset(nodes)
        for node in nodes - self._nodes:
            self._check_node(node)
        ring = copy.copy(self)
        ring._names, ring._slot, ring._free = list(self._names), dict(self._slot), list(self._free)
        ring._cache = {}
        ring._nodes = nodes
        ring._place(sorted(nodes - self._nodes), sorted(self._nodes - nodes))
        return ring

    def owner(self, topic: str) -> str | None:
        """The node that owns ``topic``, or None only when the ring is empty.

        This is on the hot path of every publish, hence the cache.
        """
        cached = self._cache.get(topic)
        if cached is not None:
            return cached
        if not self._points:
            return None
        owner = self._names[self._slots[self._index(topic)]]
        if len(self._cache) >= self._cache_limit:
            self._cache.clear()
        self._cache[topic] = owner
        return owner

    def successors(self, topic: str, count: int) -> list[str]:
        """The owner of ``topic`` first, then the next distinct nodes clockwise.

        These are the natural replicas of the topic: when the owner leaves, the
        second entry becomes the owner. At most ``min(count, len(nodes))`` nodes.
        """
        if count < 0:
            raise ValueError(f"count must not be negative, got {count}")
        wanted = min(count, len(self._nodes))
        if wanted == 0:
            return []
        start = self._index(topic)
        slots, names = self._slots, self._names
        size = len(slots)
        found: list[str] = []
        seen: set[str] = set()
        for step in range(size):
            node = names[slots[(start + step) % size]]
            if node not in seen:
                seen.add(node)
                found.append(node)
                if len(found) == wanted:
                    break
        return found

    def digest(self) -> str:
        """Short hex id of the node set, for comparing views across nodes in status."""
        return node_set_digest(self._nodes)

    def __len__(self) -> int:
        """Number of live nodes."""
        return len(self._nodes)

    def __contains__(self, node: object) -> bool:
        """Whether ``node`` is on the ring."""
        return node in self._nodes

    def __repr__(self) -> str:
        return f"HashRing(nodes={sorted(self._nodes)!r}, vnodes={self._vnodes})"

    @staticmethod
    def _check_node(node: str) -> None:
        """Reject ids that cannot name a node."""
        if not isinstance(node, str):
            raise TypeError(f"node id must be text, not {type(node).__name__}")
        if not node:
            raise ValueError("node id is empty")

    def _index(self, topic: str) -> int:
        """Index of the first point strictly clockwise of ``topic``, wrapping around."""
        point = _point(topic.encode("utf-8", _ENCODING_ERRORS))
        index = bisect_right(self._points, point)
        return 0 if index == len(self._points) else index

    def _place(self, added: list[str], removed: list[str]) -> None:
        """Put ``added``'s points into the sorted arrays and take ``removed``'s out, in
        one copy of the runs of points in between, and drop the cached owners.

        Ordering the points by (point, node id) makes the ring, and so the owner of a
        topic whose successor point is shared by two nodes, independent of insertion
        order.
        """
        points, slots, names = self._points, self._slots, self._names
        edits = [(index, -1, 0) for node in removed for index in self._indexes(node)]
        for node in added:  # a slot each, a free one first
            if self._free:
                self._slot[node] = slot = self._free.pop()
                names[slot] = node
            else:
                self._slot[node] = len(names)
                names.append(node)
        index = 0
        inserts = sorted((p, node) for node in added for p in _node_points(node, self._vnodes))
        for point, node in inserts:
            index = bisect_left(points, point, index)
            while index < len(points) and points[index] == point and names[slots[index]] < node:
                index += 1  # a tie: the smaller node id first
            edits.append((index, self._slot[node], point))
        for node in removed:
            self._free.append(self._slot.pop(node))
        edits.sort(key=itemgetter(0))  # stable: the inserts stay in (point, node id) order
        self._points, self._slots = _spliced(points, slots, edits)
        assert len(self._points) == len(self._slots) == len(self._slot) * self._vnodes
        self._cache.clear()

    def _indexes(self, node: str) -> list[int]:
        """Where ``node``'s points are in the sorted arrays."""
        points, slots, slot = self._points, self._slots, self._slot[node]
        found: list[int] = []
        index = 0
        for point in sorted(_node_points(node, self._vnodes)):
            index = slots.index(slot, bisect_left(points, point, index))
            assert points[index] == point, (node, point)
            found.append(index)
            index += 1
        return found
