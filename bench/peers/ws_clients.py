"""WebSocket clients for bench/gateway, one process of many: opens --count connections
over the --urls (in turn), joins --topic where the server speaks Phoenix (--join; and
then sends a heartbeat every 30 s, as the phoenix client does: the gateway closes a
socket silent for 60 s), and counts the pushes that arrive, with their latency from
the "t" (CLOCK_MONOTONIC ns at the publisher) in each push's body, and the sockets
the server closed.

Lines on stdin: "mark" starts a window (counts and latencies since), "report" prints
the window as one JSON line, "quit" ends. Prints "ready" once every connection is open
(and joined).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from array import array

from websockets.asyncio.client import connect

OPENING = 200  # handshakes at once
HEARTBEAT = 30.0  # seconds, as the phoenix JS client


class Counts:
    def __init__(self) -> None:
        self.frames = 0
        self.closed = 0
        self.last = 0  # when the last push arrived (CLOCK_MONOTONIC ns)
        self.latencies = array("q")  # ns
        self.since = time.monotonic()

    def report(self) -> dict:
        lat = sorted(self.latencies)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))] / 1e6, 3) if lat else None

        return {
            "frames": self.frames, "closed": self.closed, "last_ns": str(self.last),
            "seconds": time.monotonic() - self.since,
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
    beats = asyncio.create_task(heartbeats(ws)) if join else None
    now = time.monotonic_ns
    async for frame in ws:
        i = frame.find('"t":')
        if i >= 0:
            c = counts[0]
            c.frames += 1
            c.last = now()
            c.latencies.append(c.last - int(frame[i + 4 : frame.index("}", i)]))
    counts[0].closed += 1
    if beats is not None:
        beats.cancel()


async def heartbeats(ws) -> None:
    """Each socket at its own phase, as clients that connected at different times."""
    ref = 0
    await asyncio.sleep(random.uniform(0, HEARTBEAT))
    while True:
        ref += 1
        await ws.send(json.dumps([None, str(ref), "phoenix", "heartbeat", {}]))
        await asyncio.sleep(HEARTBEAT)


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
