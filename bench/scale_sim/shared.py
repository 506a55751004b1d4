"""Pure computations the simulated cores share, so that one process can host N of them.

A real cluster has a CPU per node; the simulator has one for all. Two things each core
computes are pure functions of a node set, recomputed by every core over and over:

* the consistent hash ring (``zdps.core.ring``), changed at every membership change:
  256 points per node hashed and merged into the sorted points. ``LazyRing`` *is* that
  ring placed late: the same points and answers, but only when a lookup needs them,
  which the membership scenarios never do (they route no topic). A simulated cold
  start would otherwise hash and merge N² times 256 points, and hold N rings of N
  nodes (3 GB at 1,000 nodes).
* the digest of a node's view, ``node_set_digest`` of its live peers, computed at the
  first ping after each change of the peers alive (``zdps.core.peers``): here
  memoised by node set (an LRU, all cores together).

What each costs a real node is measured apart (``ring_cost``, ``digest_cost``), and
the steady state is always simulated with the real digest, so that its CPU figure is
what a node pays (``exact_digests``). ``bench/scale --exact`` shares nothing.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterable, Iterator

import zdps.core.node
import zdps.core.peers
from zdps.core.ring import HashRing, node_set_digest

from .observe import deep_size


class LazyRing(HashRing):
    """``HashRing`` whose points are placed at the first lookup after a change."""

    def owner(self, topic: str) -> str | None:
        self._build()
        return super().owner(topic)

    def successors(self, topic: str, count: int) -> list[str]:
        self._build()
        return super().successors(topic, count)

    def _place(self, added: list[str], removed: list[str]) -> None:
        self._cache.clear()
        self._built = False

    def _build(self) -> None:
        if not self._built:
            placed = self._slot.keys()
            HashRing._place(self, sorted(self._nodes - placed), sorted(placed - self._nodes))
            self._built = True


@functools.lru_cache(maxsize=8192)
def _digest_of(nodes: frozenset[str]) -> str:
    return node_set_digest(nodes)


def shared_digest(nodes: Iterable[str]) -> str:
    """``node_set_digest``, memoised by node set for all the simulated cores."""
    return _digest_of(frozenset(nodes))


@contextlib.contextmanager
def _patched(modules: Iterable[object], name: str, value: object) -> Iterator[None]:
    saved = [(module, getattr(module, name)) for module in modules]
    for module, _ in saved:
        setattr(module, name, value)
    try:
        yield
    finally:
        for module, old in saved:
            setattr(module, name, old)


@contextlib.contextmanager
def sharing() -> Iterator[None]:
    """Meanwhile the cores build ``LazyRing``s (and keep them) and share view digests."""
    with (
        _patched([zdps.core.node], "HashRing", LazyRing),
        _patched([zdps.core.peers], "node_set_digest", shared_digest),
    ):
        yield


def exact_digests() -> contextlib.AbstractContextManager[None]:
    """Meanwhile every core computes its view digests itself, as a real node does."""
    return _patched([zdps.core.peers], "node_set_digest", node_set_digest)


def ring_cost(n: int, topics: int = 10_000, repeat: int = 3) -> dict[str, float]:
    """What one membership change costs each real node at ``n`` nodes, and what it moves
    (times: the best of ``repeat``, the machine being shared).

    ``rebuild_ms``: ``HashRing.add`` of the n-th node (hash its points, merge them);
    ``old_ring_ms``: the ring of the old nodes that ``Replication.handoffs`` makes
    besides when this node holds history (``with_nodes``); ``ring_bytes``: the ring's
    memory; ``moved``: the share of ``topics`` whose owner changes when the n-th node
    joins (ideal 1/n); ``digest_us``: a view digest, computed at the first ping after
    a change of the peers alive.
    """
    nodes = [f"n{i:04d}" for i in range(n)]
    ring = HashRing(nodes[:-1])
    rebuild = old_ring = float("inf")
    for _ in range(repeat):
        ring.remove(nodes[-1])
        started = time.perf_counter()
        ring.add(nodes[-1])
        rebuild = min(rebuild, time.perf_counter() - started)
        started = time.perf_counter()
        old = ring.with_nodes(nodes[:-1])
        old_ring = min(old_ring, time.perf_counter() - started)
    size = deep_size(ring)
    names = [f"topic/{i}" for i in range(topics)]
    moved = sum(old.owner(t) != ring.owner(t) for t in names) / topics
    return {"rebuild_ms": rebuild * 1e3, "old_ring_ms": old_ring * 1e3, "moved": moved,
            "ring_bytes": size, "digest_us": digest_cost(n)}  # fmt: skip


def digest_cost(n: int, repeat: int = 50) -> float:
    """µs a real node spends on its view digest at ``n`` nodes (the best of 5 runs)."""
    nodes = [f"n{i:04d}" for i in range(n)]
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeat):
            node_set_digest(nodes)
        best = min(best, (time.perf_counter() - started) / repeat)
    return best * 1e6
