"""``zdps bench``: publishers and subscribers in separate processes, against running nodes.

Like ``nats bench``: subscribers start first and wait until each subscription is live
at the topic's owner; then publishers send ``count`` messages each (or for
``duration`` seconds), optionally paced to ``rate`` messages/s by absolute deadlines.
Each payload starts with the send time (``time.monotonic_ns``, one clock for every
process on Linux), so subscribers measure one-way latency. Subscribers check that
every (topic, epoch) stream arrives with consecutive seq numbers: loss, duplicates and
reordering are counted, never hidden.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue
import struct
import sys
import time
from array import array
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import msgpack
import zmq
from zmq.backend import Socket as _BackendSocket

from zdps.client.protocol import Batch
from zdps.client.recovery import Gap
from zdps.wire import message_header

STAMP = struct.Struct("<q")
_recv = _BackendSocket.recv  # (socket, flags, copy, track): bytes, without the wrapper
_from_bytes = int.from_bytes
SEQ_KEY = message_header(0, 0)[:6]  # the daemon's fixed-width header layout
HEADER_SIZE = len(message_header(0, 0))
IDLE_END = 3.0  # seconds without a message, after the publishers finished, that end a run


@dataclass
class BenchConfig:
    pub_nodes: list[str]
    sub_nodes: list[str]
    topic: str = "bench"
    publishers: int = 1
    subscribers: int = 1
    count: int = 100_000
    size: int = 64
    rate: float = 0.0  # per publisher; 0 = as fast as flow control allows
    duration: float = 0.0  # > 0: publish for this long instead of ``count`` messages
    batch: int = 256
    window: int = 20_000
    ack: str = "owner"  # "none", "owner" or "replicated" (see Client.publish)
    sub_procs: int = 0  # 0: one process per subscriber, at most 2 (the machine's cores)
    batches: bool = False  # subscribers receive whole batches (the batch PUB)
    timeout: float = 30.0  # seconds a client waits for its node (and workers to be ready)


@dataclass
class SubResult:
    received: int = 0
    gaps: int = 0
    duplicates: int = 0
    first_ns: int = 0
    last_ns: int = 0
    latencies_us: list[float] = field(default_factory=list)


# ---------------------------------------------------------------------- workers


def _subscriber(config: BenchConfig, index: int, sockets: int, ready, progress, out) -> None:
    """Hold ``sockets`` SUB sockets; count, check seq order and time each message.

    The loop is the cost of a subscriber, not of the nodes: plain receives of the three
    frames (no ``zmq.Frame``, no more-flag checks: the node sends exactly three), the
    header read at its fixed offsets, and one comparison per message for the order.
    """
    from zdps.client.sync import Client

    ctx = zmq.Context()
    subs, clients = [], []
    for k in range(sockets):
        node = config.sub_nodes[(index + k) % len(config.sub_nodes)]
        client = Client(node, context=ctx, timeout=config.timeout)
        clients.append(client)
        subs.append(client.subscribe(config.topic, batches=config.batches))
    ready.put(index)
    if config.batches:
        out.put(asdict(_batch_subscriber(config, subs, progress)))
        for sub in subs:
            sub.close()
        for client in clients:
            client.close()
        ctx.destroy(0)
        return
    poller = zmq.Poller()
    socks = [s._sock for s in subs]
    for sock in socks:
        poller.register(sock, zmq.POLLIN)
    result = SubResult()
    latencies = array("d")
    expected: dict[tuple[int, int], int] = {}  # (socket, epoch) -> the next seq
    total = config.publishers * config.count * len(socks)
    sample_every = max(1, total // 200_000)
    stamp = STAMP.unpack_from
    received = next_sample = 0
    for events in _ready(poller, progress):
        for sock, _ in events:
            key_sock = id(sock)
            before = received
            while True:
                try:
                    _recv(sock, zmq.NOBLOCK, True, False)  # the topic
                except zmq.Again:
                    break
                header = _recv(sock, 0, True, False)
                payload = _recv(sock, 0, True, False)
                seq, epoch = _seq_epoch(header)
                key = (key_sock, epoch)
                want = expected.get(key, seq)  # a topic may carry earlier runs
                if seq != want:
                    if seq < want:
                        result.duplicates += 1
                    else:
                        result.gaps += seq - want
                expected[key] = seq + 1
                received += 1
                if received >= next_sample:
                    next_sample = received + sample_every
                    now = time.monotonic_ns()
                    latencies.append((now - stamp(payload)[0]) / 1000)
                    if not result.first_ns:
                        result.first_ns = now
            if received != before:
                result.last_ns = time.monotonic_ns()
                with progress["received"].get_lock():
                    progress["received"].value += received - before
    result.received = received
    result.latencies_us = latencies.tolist()
    for sub in subs:
        sub.close()
    for client in clients:
        client.close()
    ctx.destroy(0)
    out.put(asdict(result))


def _ready(poller: zmq.Poller, progress) -> Iterator[list]:
    """The sockets with something to read, poll after poll, until the publishers are
    done and IDLE_END seconds went by without a message."""
    idle_since = time.monotonic()
    while True:
        events = poller.poll(100)
        if events:
            idle_since = time.monotonic()
            yield events
        elif progress["done"].value and time.monotonic() - idle_since > IDLE_END:
            return


def _batch_subscriber(config: BenchConfig, subs: list, progress) -> SubResult:
    """The subscriber's loop with batch-aware subscriptions: ``recv_batch``, and the
    order checked and a latency sampled once per batch."""
    poller = zmq.Poller()
    by_sock = {sub._sock: sub for sub in subs}
    for sock in by_sock:
        poller.register(sock, zmq.POLLIN)
    result = SubResult()
    latencies = array("d")
    expected: dict[tuple[int, int], int] = {}  # (subscription, epoch) -> the next seq
    stamp = STAMP.unpack_from
    for events in _ready(poller, progress):
        before = result.received
        for sock, _ in events:
            sub = by_sock[sock]
            while (item := sub.recv_batch(0)) is not None:
                if type(item) is Gap:
                    result.gaps += item.last - item.first + 1
                    continue
                payloads = item.payloads if type(item) is Batch else [item.data]
                key = (id(sub), item.epoch)
                want = expected.get(key, item.seq)
                if item.seq < want:
                    result.duplicates += len(payloads)
                elif item.seq > want:
                    result.gaps += item.seq - want
                expected[key] = item.seq + len(payloads)
                result.received += len(payloads)
                now = time.monotonic_ns()
                latencies.append((now - stamp(payloads[0])[0]) / 1000)
                if not result.first_ns:
                    result.first_ns = now
        if result.received != before:
            result.last_ns = time.monotonic_ns()
            with progress["received"].get_lock():
                progress["received"].value += result.received - before
    result.latencies_us = latencies.tolist()
    return result


def _seq_epoch(header: bytes) -> tuple[int, int]:
    """``(seq, epoch)`` of a delivery header: the daemon's fixed layout read in place,
    any other msgpack spelling decoded."""
    if len(header) == HEADER_SIZE and header[:6] == SEQ_KEY:
        return _from_bytes(header[6:14], "big"), _from_bytes(header[21:], "big")
    fields = msgpack.unpackb(header)
    return fields["seq"], fields["epoch"]


def _publisher(config: BenchConfig, index: int, start, out) -> None:
    """Publish in batches, paced by absolute deadlines when a rate is set.

    Unpaced, the messages of one batch share one payload, stamped once when the batch
    is made (its messages leave together), and go to the client as one run (a list of
    payloads: no work per message); paced, each message is stamped on its own.
    """
    from zdps.client.sync import Client

    client = Client(config.pub_nodes[index % len(config.pub_nodes)], timeout=config.timeout)
    padding = b"\x00" * max(0, config.size - STAMP.size)
    start.wait()
    began = time.monotonic()
    batch = 1 if config.rate and config.rate < 50_000 else config.batch
    interval = 1 / config.rate if config.rate else 0.0
    topic = config.topic
    sent = 0

    def messages():
        nonlocal sent
        while True:
            now = time.monotonic()
            if config.duration:
                if now - began >= config.duration:
                    return
                size = batch
            elif sent >= config.count:
                return
            else:
                size = min(batch, config.count - sent)
            if interval:
                due = began + sent * interval
                if due > now:
                    time.sleep(due - now)  # never spin: the cores belong to the nodes
                    continue
                size = 1
            payload = STAMP.pack(time.monotonic_ns()) + padding
            yield (topic, [payload] * size) if size > 1 else (topic, payload)
            sent += size

    if config.ack != "none":
        stream = client.publish_stream(
            messages(), window=config.window, batch=batch, ack=config.ack
        )
        acked, failed = stream.acked, len(stream.failures)
    else:
        acked, failed = 0, 0
        for _ in client.publish_many(messages(), ack=False, batch=batch):
            pass
    client.close()
    published = acked if config.ack != "none" else sent
    out.put({"published": published, "failed": failed, "seconds": time.monotonic() - began})


# ---------------------------------------------------------------------- coordinator


def run(config: BenchConfig, show_progress: bool = True) -> dict[str, Any]:
    """Run one benchmark and return its figures (the ``--json`` object)."""
    ctx = mp.get_context("fork")
    ready, results, pub_results = ctx.Queue(), ctx.Queue(), ctx.Queue()
    progress = {"received": ctx.Value("q", 0), "done": ctx.Value("b", 0)}
    start = ctx.Event()
    procs = config.sub_procs or min(config.subscribers, 2)
    shares = [config.subscribers // procs + (i < config.subscribers % procs) for i in range(procs)]
    subs = [
        ctx.Process(target=_subscriber, args=(config, sum(shares[:i]), n, ready, progress, results))
        for i, n in enumerate(shares)
        if n
    ]
    pubs = [
        ctx.Process(target=_publisher, args=(config, i, start, pub_results))
        for i in range(config.publishers)
    ]
    for proc in subs + pubs:
        proc.start()
    try:
        for _ in subs:
            ready.get(timeout=2 * config.timeout)
        began = time.monotonic_ns()
        start.set()
        expected = config.publishers * config.count * config.subscribers
        pub_outcomes = []
        while len(pub_outcomes) < len(pubs):
            with contextlib.suppress(queue.Empty):
                pub_outcomes.append(pub_results.get(timeout=0.25))
            if show_progress:
                _show(progress["received"].value, expected, began)
        progress["done"].value = 1
        sub_outcomes = [results.get(timeout=600) for _ in subs]
        for proc in subs + pubs:
            proc.join(10)
    finally:
        for proc in subs + pubs:
            if proc.is_alive():
                proc.kill()
    if show_progress:
        sys.stderr.write("\n")
    return _summarise(config, began, pub_outcomes, sub_outcomes)


def _show(received: int, expected: int, began_ns: int) -> None:
    elapsed = max(1e-9, (time.monotonic_ns() - began_ns) / 1e9)
    fraction = min(1.0, received / expected) if expected > 0 else 0.0
    bar = "#" * int(fraction * 30)
    sys.stderr.write(
        f"\r[{bar:<30}] {fraction * 100:5.1f}%  {received:>12,} received  "
        f"{received / elapsed:>11,.0f} deliveries/s"
    )
    sys.stderr.flush()


def _summarise(config: BenchConfig, began_ns: int, pubs: list, subs: list) -> dict[str, Any]:
    published = sum(p["published"] for p in pubs)
    received = sum(s["received"] for s in subs)
    last = max((s["last_ns"] for s in subs if s["received"]), default=began_ns)
    duration = max(1e-9, (last - began_ns) / 1e9)
    latencies = sorted(x for s in subs for x in s["latencies_us"])
    expected = published * config.subscribers
    return {
        "config": asdict(config),
        "published": published,
        "failed": sum(p["failed"] for p in pubs),
        "received": received,
        "expected": expected,
        "lost": max(0, expected - received),
        "gaps": sum(s["gaps"] for s in subs),
        "duplicates": sum(s["duplicates"] for s in subs),
        "duration_s": round(duration, 4),
        "msgs_per_s": round(received / max(1, config.subscribers) / duration, 1),
        "deliveries_per_s": round(received / duration, 1),
        "mb_per_s": round(received * config.size / duration / 1e6, 2),
        "latency_us": {
            name: round(_percentile(latencies, q), 1)
            for name, q in (("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9), ("max", 100))
        },
    }


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    index = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[index]


def table(result: dict[str, Any]) -> str:
    """The human-readable summary printed by ``zdps bench``."""
    c, lat = result["config"], result["latency_us"]
    lines = [
        f"zdps bench: {c['publishers']} publisher(s) -> {c['subscribers']} subscriber(s), "
        f"topic {c['topic']!r}, {c['size']} B, "
        + (f"rate {c['rate']:,.0f}/s per publisher" if c["rate"] else "max rate"),
        "",
        f"  {'messages/s':<18}{result['msgs_per_s']:>14,.0f}",
        f"  {'deliveries/s':<18}{result['deliveries_per_s']:>14,.0f}",
        f"  {'MB/s (payload)':<18}{result['mb_per_s']:>14,.2f}",
        f"  {'published':<18}{result['published']:>14,}",
        f"  {'received':<18}{result['received']:>14,}",
        f"  {'lost':<18}{result['lost']:>14,}",
        f"  {'gaps / dups':<18}{result['gaps']:>7,} / {result['duplicates']:,}",
        f"  {'duration':<18}{result['duration_s']:>13,.3f}s",
        "",
        "  one-way latency (us)   p50      p90      p99    p99.9      max",
        "  "
        + " " * 19
        + "".join(f"{lat[k]:>9,.0f}" for k in ("p50", "p90", "p99", "p99.9", "max")),
    ]
    return "\n".join(lines)
