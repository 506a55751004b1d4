"""``zdps bench``'s worker processes: the publishers and the subscribers.

Their loops are the cost of a client, not of the nodes, so they are written to cost
little per message: the subscriber reads frames with the backend receive and checks
order with one comparison per message (or per batch, batch-aware), the publisher hands
the client whole runs of payloads. ``benchmark.py`` starts them and sums them up.
"""

from __future__ import annotations

import struct
import time
from array import array
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import msgpack
import zmq
from zmq.backend import Socket as _BackendSocket

from zdps.client.protocol import FLUSH, Batch
from zdps.client.recovery import Gap
from zdps.wire import message_header

if TYPE_CHECKING:
    from zdps.benchmark import BenchConfig

STAMP = struct.Struct("<q")
_recv = _BackendSocket.recv  # (socket, flags, copy, track): bytes, without the wrapper
_from_bytes = int.from_bytes
SEQ_KEY = message_header(0, 0)[:6]  # the daemon's fixed-width header layout
HEADER_SIZE = len(message_header(0, 0))
IDLE_END = 3.0  # seconds without a message, after the publishers finished, that end a run


@dataclass
class SubResult:
    received: int = 0
    gaps: int = 0
    duplicates: int = 0
    first_ns: int = 0
    last_ns: int = 0
    latencies_us: list[float] = field(default_factory=list)


# ---------------------------------------------------------------------- workers


def subscriber(config: BenchConfig, index: int, sockets: int, ready, progress, out) -> None:
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
    # (socket, epoch) -> the next seq; the epoch as 8 big-endian bytes, which in the
    # daemon's layout are the header's last 8, compared as they are.
    expected: dict[tuple[int, bytes], int] = {}
    total = config.publishers * config.count * len(socks)
    sample_every = max(1, total // 200_000)
    stamp = STAMP.unpack_from
    received = next_sample = 0
    for events in _ready(poller, progress):
        for sock, _ in events:
            key_sock = id(sock)
            before = received
            epoch_now: bytes | None = None  # the epoch of ``want``
            want = 0
            while True:
                try:
                    _recv(sock, zmq.NOBLOCK, True, False)  # the topic
                except zmq.Again:
                    break
                header = _recv(sock, 0, True, False)
                payload = _recv(sock, 0, True, False)
                if len(header) == HEADER_SIZE and header[:6] == SEQ_KEY:
                    seq, epoch = _from_bytes(header[6:14], "big"), header[21:]
                else:
                    seq, number = _seq_epoch(header)
                    epoch = number.to_bytes(8, "big")
                if epoch != epoch_now:
                    if epoch_now is not None:
                        expected[(key_sock, epoch_now)] = want
                    epoch_now = epoch
                    want = expected.get((key_sock, epoch), seq)  # may carry earlier runs
                if seq != want:
                    if seq < want:
                        result.duplicates += 1
                    else:
                        result.gaps += seq - want
                want = seq + 1
                received += 1
                if received >= next_sample:
                    next_sample = received + sample_every
                    now = time.monotonic_ns()
                    latencies.append((now - stamp(payload)[0]) / 1000)
                    if not result.first_ns:
                        result.first_ns = now
            if epoch_now is not None:
                expected[(key_sock, epoch_now)] = want
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


def publisher(config: BenchConfig, index: int, start, out) -> None:
    """Publish in batches, paced by absolute deadlines when a rate is set.

    Unpaced, the messages of one batch share one payload, stamped once when the batch
    is made (its messages leave together), and go to the client as one run (a list of
    payloads: no work per message). Paced, each message is stamped on its own, and
    FLUSH goes to the client before each wait, as ``publish_many`` asks of a source
    that blocks: what is due leaves then, in one frame when the publisher ran late,
    instead of waiting in a frame until ``batch`` messages filled it (at 50,000 msg/s
    and 1,024 a frame, 20 ms).
    """
    from zdps.client.sync import Client

    client = Client(config.pub_nodes[index % len(config.pub_nodes)], timeout=config.timeout)
    padding = b"\x00" * max(0, config.size - STAMP.size)
    start.wait()
    began = time.monotonic()
    batch = config.batch
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
                    yield FLUSH
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
    ended_ns = time.monotonic_ns()
    client.close()
    published = acked if config.ack != "none" else sent
    out.put(
        {
            "published": published,
            "sent": sent,
            "acked": acked,
            "failed": failed,
            "seconds": time.monotonic() - began,
            "end_ns": ended_ns,
        }
    )
