"""A ring changed in place (zdps/core/ring.py: ``add``, ``remove``, ``with_nodes``) is
the ring built afresh for its nodes: the same points in the same order, ties between
equal points included, hence the same owners and successors; a ring made from another
with ``with_nodes`` leaves that one as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zdps.core import ring as ring_module
from zdps.core.ring import HashRing

pytestmark = pytest.mark.timeout(60)

NODES = ["n0", "n1", "n2", "n3", "n4", "ab", "a\x00b", "ü"]


def coarse(data: bytes) -> int:
    """A 4-bit hash: equal points, and topics right on a point, are common."""
    return hashlib.blake2b(data, digest_size=8).digest()[0] & 0x0F


def layout(ring: HashRing) -> list[tuple[int, str]]:
    """The ring's (point, node) pairs in its order."""
    names = ring._names
    return [(point, names[slot]) for point, slot in zip(ring._points, ring._slots, strict=True)]


@settings(max_examples=150, deadline=None)
@given(
    start=st.sets(st.sampled_from(NODES), max_size=5),
    changes=st.lists(st.tuples(st.booleans(), st.sampled_from(NODES)), max_size=15),
    vnodes=st.sampled_from([1, 4, 16]),
    ties=st.booleans(),
)
def test_a_changed_ring_is_the_ring_built_afresh(
    start: set[str], changes: list, vnodes: int, ties: bool
) -> None:
    hashing = mock.patch.object(ring_module, "_point", coarse) if ties else contextlib.nullcontext()
    with hashing:
        ring = HashRing(start, vnodes=vnodes)
        for add, node in changes:
            held = node in ring
            assert (ring.add(node) if add else ring.remove(node)) is (add is not held)
            assert layout(ring) == layout(HashRing(ring.nodes, vnodes=vnodes))
            assert [ring.owner(f"t{i}") for i in range(20)] == [
                HashRing(ring.nodes, vnodes=vnodes).owner(f"t{i}") for i in range(20)
            ]


@settings(max_examples=100, deadline=None)
@given(
    before=st.sets(st.sampled_from(NODES), max_size=6),
    after=st.sets(st.sampled_from(NODES), max_size=6),
    ties=st.booleans(),
)
def test_a_ring_made_with_other_nodes_is_theirs_and_leaves_this_one(
    before: set[str], after: set[str], ties: bool
) -> None:
    hashing = mock.patch.object(ring_module, "_point", coarse) if ties else contextlib.nullcontext()
    with hashing:
        ring = HashRing(before, vnodes=8)
        was = layout(ring)
        other = ring.with_nodes(after)
        assert other.nodes == frozenset(after) and other.vnodes == 8
        assert layout(other) == layout(HashRing(after, vnodes=8))
        for node in NODES:  # changing either changes nothing of the other
            other.add(node)
        assert layout(ring) == was and ring.nodes == frozenset(before)
        ring.remove(next(iter(before), "n0"))
        assert layout(other) == layout(HashRing(NODES, vnodes=8))


def test_with_nodes_refuses_what_add_refuses() -> None:
    with pytest.raises(ValueError, match="empty"):
        HashRing(["a"]).with_nodes(["a", ""])


def test_a_point_takes_12_bytes() -> None:
    ring = HashRing([f"n{i}" for i in range(10)])
    assert len(ring._points) == len(ring._slots) == 10 * ring.vnodes
    assert ring._points.itemsize + ring._slots.itemsize == 12
