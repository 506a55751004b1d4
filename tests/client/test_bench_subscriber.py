"""``zdps bench``'s raw subscriber loop (zdps/bench_workers.py) against the fake node,
with a PUB of the test's own: it counts what arrives, and gaps and duplicates per
epoch, whether a header is in the daemon's fixed layout (read in place) or any other
msgpack spelling; an epoch that comes back goes on where it stopped."""

from __future__ import annotations

import multiprocessing
import queue
import threading
from typing import Any

import pytest
import zmq

from tests.client.fake_node import FakeNode
from zdps import bench_workers
from zdps.benchmark import BenchConfig
from zdps.topics import exact_group
from zdps.wire import message_header, pack

pytestmark = pytest.mark.timeout(30)


def run_subscriber(node: FakeNode, sent: list[tuple[int, int, bool]]) -> dict[str, Any]:
    """Feed ``(epoch, seq, fixed layout)`` messages to the subscriber; its result."""
    pub = node.ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(node.pub)
    config = BenchConfig(pub_nodes=[], sub_nodes=[node.endpoint], topic="t", count=len(sent))
    progress = {"received": multiprocessing.Value("q", 0), "done": multiprocessing.Value("b", 0)}
    ready: queue.Queue = queue.Queue()
    out: queue.Queue = queue.Queue()
    worker = threading.Thread(
        target=bench_workers.subscriber, args=(config, 0, 1, ready, progress, out)
    )
    worker.start()
    try:
        ready.get(timeout=10)
        assert pub.poll(5000) and pub.recv() == b"\x01" + exact_group("t")
        for epoch, seq, fixed in sent:
            header = message_header(seq, epoch) if fixed else pack({"seq": seq, "epoch": epoch})
            pub.send_multipart([b"t\x00", header, bench_workers.STAMP.pack(0) + b"x"])
        progress["done"].value = 1
        return out.get(timeout=10)
    finally:
        worker.join(10)
        pub.close()


def test_gaps_and_duplicates_are_counted_per_epoch(
    node: FakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench_workers, "IDLE_END", 0.2)
    sent = [
        (1, 1, True), (1, 2, True), (1, 4, True),  # one gap (3)
        (1, 4, True),  # a duplicate
        (2, 7, False), (2, 8, True),  # a new epoch may start anywhere; either spelling
        (1, 5, True),  # epoch 1 again goes on from 5: nothing missed
        (1, 9, False),  # three missed (6-8)
    ]  # fmt: skip
    result = run_subscriber(node, sent)
    assert (result["received"], result["gaps"], result["duplicates"]) == (8, 4, 1)
