"""WebSocket clients for bench/gateway, one process of many: opens --count connections
over the --urls (in turn), joins --topic where the server speaks Phoenix (--join), and
counts what arrives, with its latency from the "t" (CLOCK_MONOTONIC ns at the
publisher) in each push's body.

Lines on stdin: "mark" starts a window (counts and latencies since), "report" prints
the window as one JSON line, "quit" ends. Prints "ready" once every connection is open
(and joined).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from array import array

from websockets.asyncio.client import connect

OPENING = 200  # handshakes at once


class Counts:
    def __init__(self) -> None:
        self.frames = 0
        self.latencies = array("q")  # ns
        self.since = time.monotonic()

    def report(self) -> dict:
        lat = sorted(self.latencies)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))] / 1e6, 3) if lat else None

        return {
            "frames": self.frames, "seconds": time.monotonic() - self.since,
            "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": pct(1.0),
        }  # fmt: skip


async def client(
    url: str, topic: str, join: bool, counts: list[Counts], gate: asyncio.Semaphore, opened: list
) -> None:
    async with gate:
        ws = await connect(url, compression=None, open_timeout=60, max_queue=None)
        if join:
            await ws.send(json.dumps(["1", "1", topic, "phx_join", {}]))
            await ws.recv()
    opened.append(ws)
    now = time.monotonic_ns
    async for frame in ws:
        c = counts[0]
        c.frames += 1
        i = frame.find('"t":')
        if i >= 0:
            c.latencies.append(now() - int(frame[i + 4 : frame.index("}", i)]))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--urls", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--topic", default="fan")
    parser.add_argument("--join", action="store_true")
    args = parser.parse_args()
    urls = args.urls.split(",")
    counts = [Counts()]
    gate, opened = asyncio.Semaphore(OPENING), []
    tasks = [
        asyncio.create_task(
            client(urls[i % len(urls)], args.topic, args.join, counts, gate, opened)
        )
        for i in range(args.count)
    ]
    while len(opened) < args.count:
        if any(t.done() and t.exception() for t in tasks):
            raise next(t.exception() for t in tasks if t.done() and t.exception())
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        if line == "mark":
            counts[0] = Counts()
        elif line == "report":
            print(json.dumps(counts[0].report()), flush=True)
        elif line == "quit":
            break
    for task in tasks:
        task.cancel()


if __name__ == "__main__":
    asyncio.run(main())
