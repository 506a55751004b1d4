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

import hashlib
from bisect import bisect_right
from collections.abc import Iterable

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


class HashRing:
    """The set of live nodes, and which of them owns each topic.

    Membership changes are rare and lookups happen on every publish, so the sorted
    point list is rebuilt on ``add``/``remove`` and ``owner`` is a cached bisect.
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
        self._points_by_node: dict[str, list[int]] = {}
        self._nodes: frozenset[str] = frozenset()
        # Parallel lists sorted by (point, node id): bisect on the first, read the second.
        self._points: list[int] = []
        self._owners: list[str] = []
        self._cache: dict[str, str] = {}
        self._cache_limit = OWNER_CACHE_LIMIT
        for node in nodes:
            self._check_node(node)
            if node not in self._points_by_node:
                self._points_by_node[node] = _node_points(node, vnodes)
        self._rebuild()

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
        if node in self._points_by_node:
            return False
        self._points_by_node[node] = _node_points(node, self._vnodes)
        self._rebuild()
        return True

    def remove(self, node: str) -> bool:
        """Take ``node`` off the ring; False (and no change) if it is not there."""
        if self._points_by_node.pop(node, None) is None:
            return False
        self._rebuild()
        return True

    def owner(self, topic: str) -> str | None:
        """The node that owns ``topic``, or None only when the ring is empty.

        This is on the hot path of every publish, hence the cache.
        """
        cached = self._cache.get(topic)
        if cached is not None:
            return cached
        if not self._points:
            return None
        owner = self._owners[self._index(topic)]
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
        size = len(self._owners)
        found: list[str] = []
        seen: set[str] = set()
        for step in range(size):
            node = self._owners[(start + step) % size]
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

    def _rebuild(self) -> None:
        """Re-sort all points after a membership change and drop stale owners.

        Sorting by (point, node id) makes the order, and so the owner of a topic
        whose successor point is shared by two nodes, independent of insertion order.
        """
        pairs = sorted(
            (point, node) for node, points in self._points_by_node.items() for point in points
        )
        self._points = [point for point, _ in pairs]
        self._owners = [node for _, node in pairs]
        self._nodes = frozenset(self._points_by_node)
        self._cache.clear()
