"""zdps messages as Phoenix events (zdps/gateway/payloads.py, docs/GATEWAY.md)."""

from __future__ import annotations

import pytest

from zdps.gateway.payloads import as_event

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("data", "event"),
    [
        (b'["event",{"message":"hi"}]', ("event", {"message": "hi"})),
        (b'{"message":"hi"}', ("message", {"message": "hi"})),
        (b"[1,2]", ("message", [1, 2])),
        (b"42", ("message", 42)),
        ("plain text é".encode(), ("message", "plain text é")),
        (b"\xff\x00binary", b"\xff\x00binary"),
    ],
)
def test_each_kind_of_payload(data: bytes, event) -> None:
    assert as_event(data) == event
