"""A first rough throughput figure through three nodes: publisher on A, owner B, subscriber on C.

Usage: python bench/rough_three_nodes.py [--messages N] [--size BYTES]

Starts three `zdps start` processes on free loopback ports, subscribes on C to a
topic owned by B, publishes from A (acked, pipelined; then fire-and-forget) and
reports messages/s from the first publish to the last delivery. The real benchmark
suite (`zdps bench`, bench/compare) replaces this.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.cluster.harness import Cluster
from zdps import Client
from zdps.core.ring import HashRing


def run(messages: int, size: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp))
        try:
            a = cluster.start("A")
            cluster.start("B", seeds=[a])
            c = cluster.start("C", seeds=[a])
            cluster.wait_mesh()
            ring = HashRing(["A", "B", "C"])
            topic = next(t for i in range(1000) if ring.owner(t := f"bench-{i}") == "B")
            payload = b"x" * size
            with Client(a.api, timeout=30) as publisher, Client(c.api) as subscriber:
                for ack in (True, False):
                    with subscriber.subscribe(topic) as subscription:
                        started = time.perf_counter()
                        results = publisher.publish_many(
                            ((topic, payload) for _ in range(messages)), ack=ack
                        )
                        failures = sum(1 for r in results if isinstance(r, Exception))
                        published = time.perf_counter()
                        received = 0
                        while received < messages and subscription.recv(10) is not None:
                            received += 1
                        done = time.perf_counter()
                    mode = "acked, window 1000" if ack else "fire-and-forget"
                    rate = messages / (published - started)
                    print(
                        f"{mode:>20}: {messages} x {size} B  publish {rate:>9,.0f} msg/s"
                        f"  end-to-end {received / (done - started):>9,.0f} msg/s"
                        f"  received {received}/{messages}  failures {failures}"
                    )
        finally:
            cluster.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    run(args.messages, args.size)
