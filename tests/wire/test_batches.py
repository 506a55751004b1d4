"""Batches: the blob of payloads every hop passes on, and the entry node's checks of it."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zdps.wire import LEVEL_OWNER, LEVEL_REPLICATED, ProtocolError, batches
from zdps.wire.api import publish_entry
from zdps.wire.batches import (
    MAX_BATCH,
    check_batch,
    join_batches,
    pack_batch,
    split_oversized,
    unpack_batch,
)
from zdps.wire.publish_entries import PublishDecoder

pytestmark = pytest.mark.timeout(60)

PAYLOADS = st.lists(st.binary(max_size=40), min_size=1, max_size=50)


@given(payloads=PAYLOADS)
def test_a_batch_unpacks_to_what_was_packed(payloads: list[bytes]) -> None:
    assert unpack_batch(pack_batch(payloads), len(payloads)) == payloads
    assert msgpack.unpackb(pack_batch(payloads)) == payloads  # any msgpack library reads it


@settings(max_examples=200, deadline=None)
@given(
    first=st.lists(st.binary(max_size=40), min_size=1, max_size=300),
    second=st.lists(st.binary(max_size=40), min_size=1, max_size=300),
)
def test_two_batches_join_into_the_batch_of_both(first: list[bytes], second: list[bytes]) -> None:
    """Joined without unpacking (whatever array header each has), a batch still reads as
    the first's payloads, then the second's, to any msgpack reader."""
    joined = join_batches(pack_batch(first), len(first), pack_batch(second), len(second))
    assert unpack_batch(joined, len(first) + len(second)) == first + second
    assert msgpack.unpackb(joined) == first + second


ANY = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(
    good=st.lists(st.binary(max_size=4), max_size=4),
    bad=ANY,
    at=st.integers(0, 4),
    tail=st.binary(max_size=2),
)
def test_a_damaged_batch_is_a_protocol_error(good: list, bad: Any, at: int, tail: bytes) -> None:
    """Anything but an array of exactly n bin is refused, and nothing else is raised."""
    items = [*good[:at], bad, *good[at:]]
    blob = msgpack.packb(items, use_bin_type=True) + tail
    with pytest.raises(ProtocolError):
        unpack_batch(blob, len(items))
    with pytest.raises(ProtocolError):
        unpack_batch(pack_batch(good), len(good) + 1)


def outcome(check: Any, blob: bytes, n: int, limit: int) -> str | None:
    try:
        check(blob, n, limit)
    except ProtocolError as exc:
        return exc.code
    return None


needs_compiled = pytest.mark.skipif(
    batches.compiled is None, reason="zdps was installed without a C compiler"
)


@needs_compiled
@settings(max_examples=300, deadline=None)
@given(
    payloads=st.lists(st.binary(max_size=300), min_size=1, max_size=20),
    n_off=st.integers(-1, 1),
    cut=st.integers(0, 3),
    flip=st.tuples(st.integers(0, 10_000), st.integers(0, 255)),
    limit=st.integers(0, 400),
)
def test_the_compiled_check_says_what_unpack_batch_says(
    payloads: list[bytes], n_off: int, cut: int, flip: tuple[int, int], limit: int
) -> None:
    """The entry node's check (zdps/_batches.c; without it, ``check_batch`` is
    ``unpack_batch``) refuses exactly what unpacking refuses, with the same code: for
    batches whole, cut short, with a byte changed or added, and for the wrong n."""
    blob = bytearray(pack_batch(payloads))
    blob[flip[0] % len(blob)] = flip[1]
    n = max(1, len(payloads) + n_off)
    whole = pack_batch(payloads)
    for candidate in (whole, bytes(blob), whole[: -cut or None], whole + bytes([flip[1]])):
        want = outcome(unpack_batch, candidate, n, limit)
        assert outcome(check_batch, candidate, n, limit) == want


@needs_compiled
def test_the_compiled_check_reads_every_size_of_header_and_names_the_largest() -> None:
    for payloads in ([b"x" * 70_000, b""], [b"y"] * 20, [b"z" * 3] * 70_000):
        check_batch(pack_batch(payloads), len(payloads), 70_000)  # bin8/16/32, array 16/32
    with pytest.raises(ProtocolError) as refused:
        check_batch(pack_batch([b"ok", b"x" * 20]), 2, 19)
    assert refused.value.code == "too_large" and "20 bytes" in refused.value.message


def test_a_payload_over_the_limit_is_too_large_and_named() -> None:
    blob = pack_batch([b"ok", b"x" * 20, b"fine"])
    assert unpack_batch(blob, 3, 20) == [b"ok", b"x" * 20, b"fine"]
    with pytest.raises(ProtocolError) as refused:
        unpack_batch(blob, 3, 19)
    assert refused.value.code == "too_large" and "20 bytes" in refused.value.message


def test_oversized_payloads_split_a_batch_into_runs() -> None:
    blob = pack_batch([b"a", b"LONG", b"b", b"c", b"LONG", b"d"])
    runs, over = split_oversized(blob, 6, 3)
    assert runs == [(0, [b"a"]), (2, [b"b", b"c"]), (5, [b"d"])]
    assert over == [(1, 4), (4, 4)]


def decode(entries: list, limit: int = 8) -> tuple[list, list]:
    return PublishDecoder(limit).decode(msgpack.unpackb(msgpack.packb(entries, use_bin_type=True)))


def test_publish_entries_carry_a_batch_with_its_first_ref() -> None:
    entries, rejects = decode(
        [publish_entry(5, "t", [b"a", b"b"], LEVEL_OWNER), publish_entry(0, "u", [b"c"], 2)]
    )
    assert rejects == []
    assert entries == [
        [5, "t", 2, pack_batch([b"a", b"b"]), LEVEL_OWNER, False],
        [0, "u", 1, pack_batch([b"c"]), LEVEL_REPLICATED, False],
    ]


def test_only_the_oversized_payloads_of_a_batch_are_refused() -> None:
    """The others go on as batches of their runs, with the refs they had."""
    entry = publish_entry(10, "t", [b"a", b"x" * 9, b"b", b"c"], LEVEL_OWNER)
    entries, rejects = decode([entry])
    assert entries == [
        [10, "t", 1, pack_batch([b"a"]), LEVEL_OWNER, False],
        [12, "t", 2, pack_batch([b"b", b"c"]), LEVEL_OWNER, False],
    ]
    assert [(r.ref, r.code, r.n) for r in rejects] == [(11, "too_large", 1)]


@pytest.mark.parametrize(
    ("entry", "code", "ref", "n"),
    [
        ([4, "t", 3, pack_batch([b"a", b"b"])], "malformed", 4, 3),  # n does not match
        ([4, "t", 2, b"\x92\xc4"], "malformed", 4, 2),  # truncated
        ([4, "t", 2, msgpack.packb([b"a", "text"], use_bin_type=True)], "malformed", 4, 2),
        ([4, "bad\x00topic", 1, pack_batch([b"a"])], "invalid_topic", 4, 1),
        ([4, "t", MAX_BATCH + 1, pack_batch([b"a"])], "malformed", 4, 1),
        ([4, "t", 0, pack_batch([])], "malformed", 4, 1),
        ([2**64 - 1, "t", 2, pack_batch([b"a", b"b"])], "malformed", 2**64 - 1, 1),
        ([4, "t", 1, pack_batch([b"a"]), 3], "malformed", 4, 1),  # no such level
        (["4", "t", 1, pack_batch([b"a"])], "malformed", 0, 1),
    ],
)
def test_a_bad_publish_entry_is_refused_for_the_refs_it_names(
    entry: list, code: str, ref: int, n: int
) -> None:
    entries, rejects = decode([entry, publish_entry(9, "ok", [b"z"], LEVEL_OWNER)])
    assert [e[0] for e in entries] == [9]  # the good entry after it still counts
    assert [(r.code, r.ref, r.n) for r in rejects] == [(code, ref, n)]
