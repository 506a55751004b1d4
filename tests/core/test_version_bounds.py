"""Numbers a peer sends that a node adds to must still fit in msgpack afterwards.

Found by the live fuzzer without CURVE (tests/fuzz): a ``suspect`` of a node at version
2**64 - 1 made it refute at 2**64, and its next ``status`` reply could not be packed: the
daemon died. Versions are now refused from 2**63 on (docs/PROTOCOL.md §3.3)."""

from __future__ import annotations

import pytest

from tests.core.helpers import cluster
from zdps.wire import codec
from zdps.wire.probes import MAX_VERSION

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("ver", [2**64 - 1, MAX_VERSION])
def test_a_verdict_at_a_version_that_cannot_grow_is_refused(ver: int) -> None:
    net = cluster("ab")
    incarnation = net.core("a").incarnation
    suspect = ["suspect", {"node": "a", "inc": incarnation, "ver": ver}]
    net.inject("a", net.envelope("b", [suspect]))
    assert net.error_codes("a") == {"malformed": 1}
    assert net.core("a").membership.detector.version == 0
    codec.pack(net.core("a").status(net.clock))


def test_the_highest_version_accepted_is_refuted_within_range() -> None:
    net = cluster("ab")
    incarnation = net.core("a").incarnation
    suspect = ["suspect", {"node": "a", "inc": incarnation, "ver": MAX_VERSION - 1}]
    net.inject("a", net.envelope("b", [suspect]))  # the alive it sends is packed here
    assert net.error_codes("a") == {}
    assert net.core("a").membership.detector.version == MAX_VERSION
    codec.pack(net.core("a").status(net.clock))
