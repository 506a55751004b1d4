"""`zdps bench`'s publisher (zdps/bench_workers.py): what it hands the client, paced or not."""

from __future__ import annotations

import queue
import threading
from typing import ClassVar

import pytest

import zdps.client.sync
from zdps.bench_workers import publisher
from zdps.benchmark import BenchConfig
from zdps.client.protocol import FLUSH

pytestmark = pytest.mark.timeout(30)


class FakeClient:
    """Takes the place of zdps.client.sync.Client: records what the publisher streams."""

    streams: ClassVar[list[list]] = []

    def __init__(self, node: str, timeout: float) -> None:
        self.items: list = []
        FakeClient.streams.append(self.items)

    def publish_stream(self, messages, window: int, batch: int, ack: str):
        self.items.extend(messages)
        runs = [data for item in self.items if item is not FLUSH for data in item[1:]]
        count = sum(len(data) if type(data) is list else 1 for data in runs)
        return type("StreamResult", (), {"acked": count, "failures": []})()

    def publish_many(self, messages, ack: bool, batch: int):
        self.items.extend(messages)
        return iter(())

    def close(self) -> None:
        pass


def run(monkeypatch, **config) -> tuple[list, dict]:
    FakeClient.streams = []
    monkeypatch.setattr(zdps.client.sync, "Client", FakeClient)
    start, out = threading.Event(), queue.Queue()
    start.set()
    publisher(BenchConfig(["tcp://127.0.0.1:1"], [], **config), 0, start, out)
    return FakeClient.streams[0], out.get(timeout=5)


@pytest.mark.parametrize("ack", ["owner", "none"])
def test_a_paced_publisher_flushes_before_each_wait(monkeypatch, ack) -> None:
    """Each message is due 10 ms after the one before: it leaves before the publisher
    waits for the next, not once a frame of STREAM_BATCH messages is full."""
    items, result = run(monkeypatch, count=20, rate=100, ack=ack)
    messages = [item for item in items if item is not FLUSH]
    assert len(messages) == result["sent"] == 20
    assert all(type(data) is bytes for _topic, data in messages), "one message at a time"
    waits = [i for i, item in enumerate(items) if item is FLUSH]
    assert len(waits) >= 19, "a FLUSH before every wait"
    assert all(items[i - 1] is not FLUSH for i in waits[1:]), "a message between two waits"


def test_an_unpaced_publisher_hands_over_whole_runs(monkeypatch) -> None:
    items, result = run(monkeypatch, count=3000, batch=1024)
    assert FLUSH not in items
    assert [len(data) for _topic, data in items] == [1024, 1024, 952]
    assert result["published"] == 3000
