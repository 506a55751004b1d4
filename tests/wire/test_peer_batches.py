"""Batches from peers: every hop checks a batch's shape before it stores or passes it on.

A peer's batch whose count lies, or whose blob is no array of bin, is a bad entry of
its message: refused alone, never stored (history hands its batches out again, to
consumers and fetches, long after they came). Checked with and without the compiled
check.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zdps.wire import batches
from zdps.wire.batches import pack_batch
from zdps.wire.data import Fanout, Forward, Handoff, Queued, Store

pytestmark = pytest.mark.timeout(60)

KINDS: dict[type, Any] = {  # an entry of each kind around a batch (n, blob)
    Forward: lambda n, blob: ["t", n, blob, 7, 0, 1],
    Fanout: lambda n, blob: ["t", 1, 1, n, blob],
    Store: lambda n, blob: ["t", 1, 1, n, blob, False],
    Queued: lambda n, blob: ["t", b"q", 1, 1, n, blob],
}


@pytest.fixture(params=["compiled", "python"])
def checker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "python":
        monkeypatch.setattr(batches, "compiled", None)
    elif batches.compiled is None:
        pytest.skip("zdps/_batches.c is not built here")
    return request.param


payloads = st.lists(st.binary(max_size=20), min_size=1, max_size=40)


# The fixture picks the checker for every example alike: nothing to reset between them.
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(good=payloads, bad=payloads, lie=st.integers(1, 4096))
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_batch_whose_count_lies_is_refused_alone(
    checker: str, kind: type, good: list[bytes], bad: list[bytes], lie: int
) -> None:
    entry = KINDS[kind]
    if lie == len(bad):
        lie += 1
    message = kind.decode([entry(len(good), pack_batch(good)), entry(lie, pack_batch(bad))])
    assert len(message.entries) == 1
    (reject,) = message.rejects
    assert f"a batch of {lie} is an array of {lie} payloads" in reject.why
    assert reject.count == lie
    assert reject.ack_id == (7 if kind is Forward else 0)


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_blob_that_is_no_array_of_bin_is_refused(checker: str, kind: type) -> None:
    for blob in (b"", b"\x92\xc4\x01a", b"\x91\xa1a", b"\xc4\x01a", b"\x92\xc4\x01a\x01"):
        message = kind.decode([KINDS[kind](2, blob)])
        assert message.entries == [] and len(message.rejects) == 1, blob


def test_a_handoff_holding_a_bad_batch_is_refused(checker: str) -> None:
    good = [1, 1, 2, pack_batch([b"a", b"b"]), 0.0]
    bad = [1, 3, 255, pack_batch([b"c"]), 0.0]
    message = Handoff.decode([["t", None, [good]], ["t", None, [good, bad]]])
    assert [entry.stored for entry in message.entries] == [[good]]
    assert "a batch of 255 is an array of 255 payloads" in message.rejects[0].why
