"""`zdps bench`'s publisher (zdps/bench_workers.py): what it hands the client, paced or not."""

from __future__ import annotations

import queue
import threading
import time
from typing import ClassVar

import pytest

import zdps.bench_workers
import zdps.client.sync
from zdps.bench_workers import publisher
from zdps.benchmark import BenchConfig
from zdps.client.protocol import FLUSH

pytestmark = pytest.mark.timeout(30)


SLEEP = "sleep"  # noted among the items where the publisher waited


class FakeClient:
    """Takes the place of zdps.client.sync.Client: records what the publisher streams."""

    streams: ClassVar[list[list]] = []

    def __init__(self, node: str, timeout: float) -> None:
        self.items: list = []
        FakeClient.streams.append(self.items)

    def publish_stream(self, messages, window: int, batch: int, ack: str):
        count = 0
        for item in messages:
            self.items.append(item)
            if item is not FLUSH:
                count += len(item[1]) if type(item[1]) is list else 1
        return type("StreamResult", (), {"acked": count, "failures": []})()

    def publish_many(self, messages, ack: bool, batch: int):
        self.items.extend(messages)
        return iter(())

    def close(self) -> None:
        pass


def run(monkeypatch, **config) -> tuple[list, dict]:
    FakeClient.streams = []
    monkeypatch.setattr(zdps.client.sync, "Client", FakeClient)
    sleep = time.sleep

    def noted_sleep(seconds: float) -> None:
        FakeClient.streams[-1].append(SLEEP)
        sleep(seconds)

    monkeypatch.setattr(zdps.bench_workers.time, "sleep", noted_sleep)
    start, out = threading.Event(), queue.Queue()
    start.set()
    publisher(BenchConfig(["tcp://127.0.0.1:1"], [], **config), 0, start, out)
    return FakeClient.streams[0], out.get(timeout=5)


@pytest.mark.parametrize("ack", ["owner", "none"])
def test_a_paced_publisher_flushes_before_each_wait(monkeypatch, ack) -> None:
    """What is due leaves before the publisher waits for the next message, not once a
    frame of STREAM_BATCH messages is full."""
    items, result = run(monkeypatch, count=50, rate=1000, ack=ack)
    messages = [item for item in items if item not in (FLUSH, SLEEP)]
    assert len(messages) == result["sent"] == 50
    assert all(type(data) is bytes for _topic, data in messages), "one message at a time"
    waits = [i for i, item in enumerate(items) if item is SLEEP]
    assert waits, "a paced publisher waits"
    assert all(items[i - 1] is FLUSH for i in waits), "a FLUSH before every wait"


def test_an_unpaced_publisher_hands_over_whole_runs(monkeypatch) -> None:
    items, result = run(monkeypatch, count=3000, batch=1024)
    assert FLUSH not in items
    assert [len(data) for _topic, data in items] == [1024, 1024, 952]
    assert result["published"] == 3000
