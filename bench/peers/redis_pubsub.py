"""Redis pub/sub through redis-py with the hiredis parser.

- `pub`: PUBLISH through a non-transactional pipeline of 100 commands (throughput and
  fan-out); at a fixed rate each message is its own PUBLISH, written at its deadline,
  with the replies read as they arrive (not waited for one by one).
- `sub`: one SUBSCRIBE connection, `PubSub.get_message()`.
- `fsub`: many SUBSCRIBE connections in one process, multiplexed with `selectors`.
"""

from __future__ import annotations

import selectors
from typing import Any

import redis
from redis.utils import HIREDIS_AVAILABLE

from .common import Receiving, deadlines, now_ns, padding, ready, report, stamp, tight_timers

PIPELINE = 100


def _client(cfg: dict[str, Any]) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=cfg["port"], socket_connect_timeout=5)


def _subscribe(cfg: dict[str, Any]) -> Any:
    pubsub = _client(cfg).pubsub(ignore_subscribe_messages=False)
    pubsub.subscribe(cfg["channel"])
    confirm = pubsub.get_message(timeout=5.0)  # the subscribe confirmation
    if not confirm or confirm["type"] != "subscribe":
        raise RuntimeError(f"no subscribe confirmation: {confirm!r}")
    return pubsub


def sub(cfg: dict[str, Any]) -> None:
    pubsub = _subscribe(cfg)
    rx = Receiving(cfg, cfg["count"])
    ready(hiredis=HIREDIS_AVAILABLE)
    get = pubsub.get_message
    add, every = rx.samples.add, rx.samples.every
    received = first = last = 0
    expected = rx.expected
    while received < expected:
        msg = get(timeout=0.2)
        if msg is None:
            rx.received, rx.last_ns = received, last
            if rx.expired():
                break
            continue
        last = now_ns()
        if not first:
            first = last
        received += 1
        if not received % every:
            add(msg["data"], last)
    rx.received, rx.first_ns, rx.last_ns = received, first, last
    rx.finish(cfg, hiredis=HIREDIS_AVAILABLE)
    pubsub.close()


def fsub(cfg: dict[str, Any]) -> None:
    pubsubs = [_subscribe(cfg) for _ in range(cfg["connections"])]
    selector = selectors.DefaultSelector()
    for ps in pubsubs:
        selector.register(ps.connection._sock, selectors.EVENT_READ, ps)
    rx = Receiving(cfg, cfg["count"] * len(pubsubs))
    ready(hiredis=HIREDIS_AVAILABLE)
    add, every = rx.samples.add, rx.samples.every
    received = first = last = 0
    expected = rx.expected
    while received < expected:
        events = selector.select(0.2)
        if not events:
            rx.received, rx.last_ns = received, last
            if rx.expired():
                break
            continue
        for key, _ in events:
            get = key.data.get_message
            # Drain this connection: hiredis may hold several replies from one read.
            while (msg := get(timeout=0.0)) is not None:
                last = now_ns()
                received += 1
                if not received % every:
                    add(msg["data"], last)
        if not first:
            first = last
    rx.received, rx.first_ns, rx.last_ns = received, first, last
    rx.finish(cfg, hiredis=HIREDIS_AVAILABLE)
    for ps in pubsubs:
        ps.close()


def pub(cfg: dict[str, Any]) -> None:
    tight_timers()
    client = _client(cfg)
    client.ping()
    ready()
    channel, pad, count, rate = cfg["channel"], padding(cfg["size"]), cfg["count"], cfg.get("rate")
    published = 0
    start = now_ns()
    if rate:
        # Each PUBLISH is written at its deadline; its reply is read whenever it is there,
        # so a loopback round trip (~0.2 ms here) does not hold back the next message.
        conn = client.connection_pool.get_connection()
        send, can_read, read = conn.send_command, conn.can_read, conn.read_response
        outstanding = 0
        for _ in deadlines(count, rate):
            send("PUBLISH", channel, stamp(pad), check_health=False)
            published += 1
            outstanding += 1
            while outstanding and can_read(timeout=0):
                read()
                outstanding -= 1
        for _ in range(outstanding):
            read()
        client.connection_pool.release(conn)
    else:
        pipe = client.pipeline(transaction=False)
        publish = pipe.publish
        for i in range(count):
            publish(channel, stamp(pad))
            if not (i + 1) % PIPELINE:
                pipe.execute()
                published = i + 1
        pipe.execute()
        published = count
    report({"published": published, "start_ns": start, "end_ns": now_ns(), "pipeline": PIPELINE})
    client.close()
