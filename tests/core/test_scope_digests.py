"""The scope overlay's digests (zdps/core/scope_digests.py), kept up to date by the overlay.

Over random local joins and leaves and peers' syncs, updates and downs: the sum digest
the overlay keeps, of its local counts and of what it holds for each peer, is always
the one computed afresh from those counts; the sorted form too; and two replicas that
hold the same counts give the same digests whatever order the changes came in.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zdps.core.overlay import NotJoined, Overlay
from zdps.core.scope_digests import (
    MODULUS,
    entry_hash,
    is_sum,
    sorted_digest,
    sum_digest,
)
from zdps.wire.gossip import Sync, Update

pytestmark = pytest.mark.timeout(120)

GROUPS = [b"a\x00", b"b\x00", b"c.", b"", b"room.7\x00"]
PEERS = ["p1", "p2"]


def fresh(counts: dict[bytes, int]) -> str:
    return sum_digest(sum(entry_hash(g, c) for g, c in counts.items()) % MODULUS)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("join"), st.sampled_from(GROUPS), st.integers(1, 3)),
        st.tuples(st.just("leave"), st.sampled_from(GROUPS), st.integers(1, 3)),
        st.tuples(st.just("up"), st.sampled_from(PEERS)),
        st.tuples(st.just("down"), st.sampled_from(PEERS)),
        st.tuples(
            st.just("sync"),
            st.sampled_from(PEERS),
            st.dictionaries(st.sampled_from(GROUPS), st.integers(1, 3)),
        ),
        st.tuples(
            st.just("update"),
            st.sampled_from(PEERS),
            st.dictionaries(st.sampled_from(GROUPS), st.integers(0, 3), min_size=1),
        ),
    ),
    max_size=40,
)


def play(overlay: Overlay, steps: list) -> None:
    for step in steps:
        kind = step[0]
        if kind == "join":
            overlay.join(step[1], step[2])
        elif kind == "leave":
            with contextlib.suppress(NotJoined):  # not a member: nothing happens
                overlay.leave(step[1], step[2])
        elif kind == "up":
            overlay.peer_up(step[1])
        elif kind == "down":
            overlay.peer_down(step[1])
        else:
            message = Sync(dict(step[2])) if kind == "sync" else Update(dict(step[2]))
            overlay.handle(step[1], message)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_the_kept_digests_are_always_the_ones_computed_afresh(steps: list) -> None:
    overlay = Overlay("me")
    play(overlay, steps)
    local = overlay.local_counts()
    assert overlay.local_digest() == fresh(local) and is_sum(overlay.local_digest())
    assert overlay.local_digest(sorted_form=True) == sorted_digest(local)
    for peer in PEERS:
        held = overlay._remote.get(peer)
        if held is None:
            assert overlay.peer_digest(peer) is None
            continue
        assert overlay.peer_digest(peer) == fresh(held)
        assert overlay.peer_digest(peer, sorted_form=True) == sorted_digest(held)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(GROUPS), st.integers(1, 3)), st.randoms())
def test_the_same_counts_give_the_same_digest_in_any_order(counts, rng) -> None:
    """What a peer holds for us, built from a sync, matches our own, built by joins in
    any order; a count of one more does not."""
    ours, theirs = Overlay("me"), Overlay("peer")
    groups = list(counts.items())
    rng.shuffle(groups)
    for group, count in groups:
        ours.join(group, count)
    theirs.peer_up("me")
    theirs.handle("me", Sync(dict(counts)))
    assert theirs.peer_digest("me") == ours.local_digest()
    if counts:
        group = next(iter(counts))
        theirs.handle("me", Update({group: counts[group] + 1}))
        assert theirs.peer_digest("me") != ours.local_digest()
