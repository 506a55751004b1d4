"""Queue groups: one publisher, members that share its messages (bench/queues).

Each payload is the send stamp (8 bytes), the message's index (4 bytes, big-endian) and
padding. A member writes the indexes it got to ``cfg["out"]`` (4-byte unsigned ints),
so that the parent checks that the members got every message once between them.

- `zdps_member`: ``Client.subscribe(topic, group=...)``, read with ``recv_batch``;
- `zdps_pub`: ``Client.publish_stream`` (acknowledged by the owner, 256 per batch);
- `nats_member`: nats-py, ``subscribe(subject, queue=...)`` with a callback;
- `nats_pub`: nats-py, ``publish`` in a loop, then ``flush``.

A member stops once ``idle_s`` went by without a message after the publisher is done
(it cannot know how many are its share), or after ``timeout_s``.
"""

from __future__ import annotations

import array
import asyncio
import time
from typing import Any

import nats

from .common import now_ns, ready, report

INDEX_AT = slice(8, 12)
SUB_LIMITS = {"pending_msgs_limit": 10_000_000, "pending_bytes_limit": 2**31}


def payloads(cfg: dict[str, Any]) -> list[bytes]:
    """The messages, made before the clock starts; stamped when they are made."""
    pad = b"\x00" * max(0, cfg["size"] - 12)
    stamp = now_ns().to_bytes(8, "big")
    return [stamp + i.to_bytes(4, "big") + pad for i in range(cfg["count"])]


class Share:
    """What one member got: indexes, first and last receipt."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.indexes = array.array("I")
        self.first_ns = self.last_ns = 0
        self.reads = 0  # batches received: how well the system batches
        self.began = time.monotonic()
        self.cpu0 = time.process_time()

    def got(self, batch: list[bytes]) -> None:
        t = now_ns()
        self.first_ns = self.first_ns or t
        self.last_ns = t
        self.reads += 1
        self.indexes.extend(int.from_bytes(p[INDEX_AT], "big") for p in batch)

    def over(self) -> bool:
        idle = self.last_ns and (now_ns() - self.last_ns) / 1e9 > self.cfg["idle_s"]
        return bool(idle) or time.monotonic() - self.began > self.cfg["timeout_s"]

    def finish(self) -> None:
        with open(self.cfg["out"], "wb") as out:
            self.indexes.tofile(out)
        report(
            {
                "received": len(self.indexes),
                "reads": self.reads,
                "first_ns": self.first_ns,
                "last_ns": self.last_ns,
                "cpu_s": time.process_time() - self.cpu0,  # the idle wait at the end too
            }
        )


def zdps_member(cfg: dict[str, Any]) -> None:
    from zdps import Client

    with Client(cfg["node"], timeout=30) as client:
        member = client.subscribe(cfg["topic"], group=cfg["group"])
        share = Share(cfg)
        ready()
        while not share.over():
            batch = member.recv_batch(0.2)
            if batch is not None:
                share.got(batch.payloads)
        member.close()
    share.finish()


def zdps_pub(cfg: dict[str, Any]) -> None:
    from zdps import Client

    data = payloads(cfg)
    topic = cfg["topic"]
    with Client(cfg["node"], timeout=60) as client:
        ready()
        cpu0, began = time.process_time(), now_ns()
        result = client.publish_stream(((topic, d) for d in data), batch=256)
        ended, cpu = now_ns(), time.process_time() - cpu0
    report({"began_ns": began, "ended_ns": ended, "acked": result.acked, "cpu_s": cpu})


async def _nats_member(cfg: dict[str, Any]) -> None:
    nc = await nats.connect(cfg["url"], allow_reconnect=False)
    share = Share(cfg)

    async def on_message(msg: Any) -> None:
        share.got([msg.data])

    await nc.subscribe(cfg["topic"], queue=cfg["group"], cb=on_message, **SUB_LIMITS)
    await nc.flush()
    ready()
    while not share.over():
        await asyncio.sleep(0.1)
    await nc.close()
    share.finish()


def nats_member(cfg: dict[str, Any]) -> None:
    asyncio.run(_nats_member(cfg))


async def _nats_pub(cfg: dict[str, Any]) -> None:
    data = payloads(cfg)
    nc = await nats.connect(cfg["url"], allow_reconnect=False)
    await nc.flush()
    ready()
    cpu0, began = time.process_time(), now_ns()
    subject, publish = cfg["topic"], nc.publish
    for i, payload in enumerate(data):
        await publish(subject, payload)
        if not i % 1024:
            await asyncio.sleep(0)  # let the flusher write
    await nc.flush()
    cpu = time.process_time() - cpu0
    report({"began_ns": began, "ended_ns": now_ns(), "acked": len(data), "cpu_s": cpu})
    await nc.close()


def nats_pub(cfg: dict[str, Any]) -> None:
    asyncio.run(_nats_pub(cfg))
