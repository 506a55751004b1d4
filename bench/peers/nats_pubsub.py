"""NATS core pub/sub through nats-py (asyncio).

- `pub`: `await nc.publish()` in a loop, then `flush()`; at a fixed rate, each message
  at its deadline, with a turn of the event loop (so the flusher writes) while on time.
- `sub`: one connection, one subscription with a callback.
- `fsub`: many connections in one process (one subscription each, one event loop).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import nats

from .common import Receiving, now_ns, padding, ready, report, stamp, tight_timers

# Let the client buffer a whole run rather than drop as a "slow consumer".
SUB_LIMITS = {"pending_msgs_limit": 10_000_000, "pending_bytes_limit": 2**31}


async def _connect(cfg: dict[str, Any]) -> Any:
    return await nats.connect(
        cfg["url"], allow_reconnect=False, connect_timeout=5, max_reconnect_attempts=0
    )


async def _receive(cfg: dict[str, Any], connections: int) -> None:
    rx = Receiving(cfg, cfg["count"] * connections)
    add, every = rx.samples.add, rx.samples.every
    finished = asyncio.Event()
    state = {"received": 0, "first": 0, "last": 0}

    async def on_message(msg: Any) -> None:
        t = now_ns()
        n = state["received"] = state["received"] + 1
        state["last"] = t
        if not state["first"]:
            state["first"] = t
        if not n % every:
            add(msg.data, t)
        if n >= rx.expected:
            finished.set()

    conns = []
    for _ in range(connections):
        nc = await _connect(cfg)
        await nc.subscribe(cfg["subject"], cb=on_message, **SUB_LIMITS)
        await nc.flush()
        conns.append(nc)
    rx.started_ns = now_ns()
    ready()
    while not finished.is_set():
        try:
            await asyncio.wait_for(finished.wait(), 0.2)
        except TimeoutError:
            rx.received, rx.last_ns = state["received"], state["last"]
            if rx.expired():
                break
    rx.received, rx.first_ns, rx.last_ns = state["received"], state["first"], state["last"]
    rx.finish(cfg)
    for nc in conns:
        await nc.close()


def sub(cfg: dict[str, Any]) -> None:
    asyncio.run(_receive(cfg, 1))


def fsub(cfg: dict[str, Any]) -> None:
    asyncio.run(_receive(cfg, cfg["connections"]))


async def _publish(cfg: dict[str, Any]) -> None:
    tight_timers()
    nc = await _connect(cfg)
    await nc.flush()
    ready()
    subject, pad, count, rate = cfg["subject"], padding(cfg["size"]), cfg["count"], cfg.get("rate")
    publish = nc.publish
    published = 0
    start = now_ns()
    if rate:
        # Each message at its absolute deadline. While on schedule, one turn of the event
        # loop before waiting lets nats-py's flusher task write the previous message at
        # once; when behind, messages go out back to back and are flushed together.
        period, sleep = 1e9 / rate, time.sleep
        t0 = now_ns() + 1_000_000
        for i in range(count):
            deadline = t0 + int(i * period)
            if deadline > now_ns():
                await asyncio.sleep(0)
                delay = deadline - now_ns()
                if delay > 0:
                    sleep(delay / 1e9)
            await publish(subject, stamp(pad))
            published += 1
    else:
        for _ in range(count):
            await publish(subject, stamp(pad))
            published += 1
    await nc.flush(timeout=cfg["timeout_s"])
    report({"published": published, "start_ns": start, "end_ns": now_ns()})
    await nc.close()


def pub(cfg: dict[str, Any]) -> None:
    asyncio.run(_publish(cfg))
