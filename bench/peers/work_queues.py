"""Work queues: one producer, workers that each ack what they get (bench/workqueue).

Each payload is the send stamp (8 bytes), the message's index (4 bytes, big-endian) and
padding. A worker writes the index of every message it got, duplicates included, to
``cfg["out"]`` (4-byte unsigned ints), acks each one, and stops once ``idle_s`` went by
without a message (it cannot know its share), or after ``timeout_s``.

- zdps: ``Client.publish_stream(..., ack="replicated")``; workers ``Client.consume``
  (one durable consumer), ``recv_batch`` and one frame of acks for it (``verdicts``);
- NATS JetStream (nats-py): ``js.publish`` (acknowledged by the server, 256 at a time),
  workers on one durable pull consumer, ``fetch`` of up to 256, ``ack`` each;
- Redis Streams (redis-py + hiredis): ``XADD`` in pipelines of 100, workers in one
  consumer group, ``XREADGROUP`` of up to 256, one ``XACK`` per read.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import nats
import redis

from .common import now_ns, ready, report
from .queue_groups import Share, payloads

WINDOW = 256  # messages a producer has in flight, and a worker reads, at a time


def zdps_worker(cfg: dict[str, Any]) -> None:
    from zdps import Client

    with Client(cfg["node"], timeout=30) as client:
        member = client.consume(cfg["topic"], cfg["group"])
        share = Share(cfg)
        ready()
        while not share.over():
            messages = member.recv_batch(0.2)
            if messages:
                share.got([m.data for m in messages])
                member.verdicts(messages)  # one frame of acks
        member.close()
    share.finish()


def zdps_producer(cfg: dict[str, Any]) -> None:
    from zdps import Client

    data, topic = payloads(cfg), cfg["topic"]
    with Client(cfg["node"], timeout=60) as client:
        ready()
        cpu0, began = time.process_time(), now_ns()
        result = client.publish_stream(((topic, d) for d in data), batch=WINDOW, ack="replicated")
        cpu = time.process_time() - cpu0
    report({"began_ns": began, "acked": result.acked, "cpu_s": cpu})


async def _js_worker(cfg: dict[str, Any]) -> None:
    nc = await nats.connect(cfg["url"], allow_reconnect=False)
    js = nc.jetstream()
    sub = await js.pull_subscribe(cfg["topic"], durable=cfg["group"], stream=cfg["stream"])
    share = Share(cfg)
    ready()
    while not share.over():
        try:
            messages = await sub.fetch(WINDOW, timeout=0.2)
        except (TimeoutError, nats.errors.TimeoutError):
            continue
        share.got([m.data for m in messages])
        for message in messages:
            await message.ack()
    await nc.close()
    share.finish()


def js_worker(cfg: dict[str, Any]) -> None:
    asyncio.run(_js_worker(cfg))


async def _js_producer(cfg: dict[str, Any]) -> None:
    data = payloads(cfg)
    nc = await nats.connect(cfg["url"], allow_reconnect=False)
    js = nc.jetstream()
    ready()
    cpu0, began = time.process_time(), now_ns()
    subject = cfg["topic"]
    for start in range(0, len(data), WINDOW):
        await asyncio.gather(*(js.publish(subject, d) for d in data[start : start + WINDOW]))
    cpu = time.process_time() - cpu0
    report({"began_ns": began, "acked": len(data), "cpu_s": cpu})
    await nc.close()


def js_producer(cfg: dict[str, Any]) -> None:
    asyncio.run(_js_producer(cfg))


def _redis(cfg: dict[str, Any]) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=cfg["port"], socket_connect_timeout=5)


def redis_worker(cfg: dict[str, Any]) -> None:
    client, stream, group = _redis(cfg), cfg["topic"], cfg["group"]
    name = cfg["out"]
    share = Share(cfg)
    ready()
    while not share.over():
        read = client.xreadgroup(group, name, {stream: ">"}, count=WINDOW, block=200)
        if not read:
            continue
        entries = read[0][1]
        share.got([fields[b"d"] for _, fields in entries])
        client.xack(stream, group, *(entry_id for entry_id, _ in entries))
    share.finish()


def redis_producer(cfg: dict[str, Any]) -> None:
    data = payloads(cfg)
    client, stream = _redis(cfg), cfg["topic"]
    ready()
    cpu0, began = time.process_time(), now_ns()
    for start in range(0, len(data), 100):
        pipe = client.pipeline(transaction=False)
        for payload in data[start : start + 100]:
            pipe.xadd(stream, {"d": payload})
        pipe.execute()
    cpu = time.process_time() - cpu0
    report({"began_ns": began, "acked": len(data), "cpu_s": cpu})
