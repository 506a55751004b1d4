"""A zdps subscriber that falls behind at the end of a burst learns of the lost tail
from the node's loss notice and fetches it from history, though no later message ever
comes (docs/PROTOCOL.md §9.6): no silent loss."""

from __future__ import annotations

import pytest

from tests.cluster.harness import Cluster, wait_for
from zdps.client.recovery import Gap

pytestmark = pytest.mark.timeout(120)

COUNT = 20_000
PAYLOAD = b"x" * 1000  # 20 MB in all: more than the node's and the kernel's queues hold


@pytest.mark.parametrize("batches", [False, True], ids=["raw", "batches"])
def test_a_lost_tail_is_recovered_with_no_later_message(cluster: Cluster, batches) -> None:
    node = cluster.start("A", pub_hwm=100, history=COUNT)
    with node.client(timeout=30) as client:
        sub = client.subscribe("burst", rcvhwm=100, batches=batches)
        result = client.publish_stream([("burst", PAYLOAD)] * COUNT, batch=64)
        assert result.acked == COUNT and not result.failures
        lost = wait_for(lambda: node.counters()["subscriber_queue_full"], 20, "a loss")
        got = []
        while len(got) < COUNT:
            item = sub.recv(timeout=15)
            assert item is not None, f"stuck after {len(got)} of {COUNT} (lost {lost} times)"
            assert not isinstance(item, Gap), item
            got.append(item.seq)
        assert got == list(range(1, COUNT + 1))
        sub.close()
        # The subscriber told the node what it missed live, all of it recovered.
        (report,) = client.status()["subscriber_losses"]["by_subscriber"].values()
        assert report["missed"] == report["recovered"] > 0
