"""The roles and the monitor of bench/overload: publishers that offer more than a 3-node
cluster delivers, a fast and a slow subscriber, and the bench's own view of the daemons
(status latency every 100 ms, RSS and CPU every 0.5 s).

The roles run as `python -m peers.worker overload ROLE CONFIG` children (peers.runner.Child):
each prints READY once connected, waits for the `go` file, and prints RESULT at its end.
Times are time.monotonic_ns(), one clock for every process on Linux, so the bench can cut
every series to the same window.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import zmq

from . import cpu
from .common import ready, report, tight_timers

SIZE = 64  # payload bytes
TICK_NS = 100_000_000  # a subscriber's timeline and progress file: every 0.1 s
SUB_RCVHWM = 100_000  # batches the fast subscriber may queue (room, not a limit)
HEADER = b"\x82\xa3seq\xcf"  # the fixed 29-byte delivery header (docs/PROTOCOL.md §9.1)
CLOSE_LINGER_MS = 10_000  # a raw publisher's last queued frames still go to the node
STATUS_TIMEOUT = 1.0  # a status call that takes longer counts as failed


def wait_go(path: str) -> int:
    """Block until the parent creates `path`; the start time (ns)."""
    while not os.path.exists(path):
        time.sleep(0.001)
    return time.monotonic_ns()


def connected_dealer(ctx: zmq.Context, api: str, sndhwm: int) -> zmq.Socket:
    """A DEALER on the node's API that has had an answer (an `info` request), so that
    every later send goes straight to a connected node."""
    from zdps.wire.api import Info, encode_request

    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.SNDHWM, sndhwm)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(api)
    sock.send(encode_request(1, Info()))
    if not sock.poll(30_000):
        raise RuntimeError(f"no answer from {api}")
    sock.recv()
    return sock


def raw_pub(cfg: dict[str, Any]) -> None:
    """Pre-encoded fire-and-forget publish frames (ref 0) of `batch` payloads, sent with
    NOBLOCK: at `rate` msg/s on absolute deadlines (a late wake-up catches up, so the
    offer does not shrink when the node pushes back), or as fast as the node takes them
    (`rate` 0). A send that would block is refused by back-pressure: counted, and the
    next frame is tried 1 ms later. Offered = frames attempted, accepted = frames sent."""
    from zdps.wire.api import encode_publish, publish_entry

    tight_timers()
    batch = cfg["batch"]
    frame = encode_publish([publish_entry(0, cfg["topic"], [b"x" * SIZE] * batch, 0)])
    ctx = zmq.Context()
    sock = connected_dealer(ctx, cfg["api"], cfg["sndhwm"])
    ready()
    start = wait_go(cfg["go"])
    end = start + int(cfg["seconds"] * 1e9)
    period = int(batch * 1e9 / cfg["rate"]) if cfg["rate"] else 0
    attempts = sent = 0
    timeline: list[tuple[int, int, int]] = []
    next_mark = start
    send, again, now_ns = sock.send, zmq.Again, time.monotonic_ns
    while (now := now_ns()) < end:
        if now >= next_mark:
            timeline.append((now, attempts * batch, sent * batch))
            next_mark += 500_000_000
        due = (now - start) // period + 1 if period else attempts + 1
        refused = False
        while attempts < due:
            attempts += 1
            try:
                send(frame, zmq.NOBLOCK, copy=False)
                sent += 1
            except again:
                refused = True
        if refused:
            time.sleep(0.001)
        elif period:
            time.sleep(max(0.0, (start + attempts * period - now_ns()) / 1e9))
    stopped = now_ns()
    timeline.append((stopped, attempts * batch, sent * batch))
    sock.close(linger=CLOSE_LINGER_MS)  # what was accepted reaches the node, not dropped
    ctx.term()
    report(
        {
            "start_ns": start,
            "end_ns": stopped,
            "offered": attempts * batch,
            "accepted": sent * batch,
            "timeline": timeline,
        }
    )


def acked_pub(cfg: dict[str, Any]) -> None:
    """A zdps.Client publish_stream at `rate` msg/s (owner acks), fed in 10 ms runs on
    absolute deadlines, so acked publishes that the cluster fails show as failures."""
    import zdps

    topic, payload, rate = cfg["topic"], b"a" * SIZE, cfg["rate"]
    handed = 0

    def messages() -> Any:
        nonlocal handed
        while (now := time.monotonic_ns()) < end:
            due = int((now - start) * rate / 1e9) - handed
            if due > 0:
                handed += due
                yield topic, [payload] * due
                yield zdps.FLUSH
            else:
                time.sleep(0.01)

    with zdps.Client(cfg["api"]) as client:
        ready()
        start = wait_go(cfg["go"])
        end = start + int(cfg["seconds"] * 1e9)
        res = client.publish_stream(messages())
        stopped = time.monotonic_ns()
    codes = collections.Counter(f.code for f in res.failures)
    report(
        {
            "start_ns": start,
            "end_ns": stopped,
            "handed": handed,
            "acked": res.acked,
            "failed": len(res.failures),
            "failed_by_code": dict(codes),
            "stopped_early": stopped < end - 100_000_000,
        }
    )


class Seqs:
    """Seq continuity per epoch: messages missing between consecutive receipts."""

    def __init__(self) -> None:
        self.next: dict[int, int] = {}
        self.first: dict[int, int] = {}
        self.gaps = 0

    def add(self, seq: int, epoch: int, n: int) -> None:
        expected = self.next.get(epoch)
        if expected is None:
            self.first[epoch] = seq
        elif seq > expected:
            self.gaps += seq - expected
        self.next[epoch] = max(seq + n, expected or 0)

    def span(self) -> int:
        """Messages from the first seq seen to the last, over all epochs."""
        return sum(self.next[e] - self.first[e] for e in self.next)


def sub_socket(ctx: zmq.Context, endpoint: str, topic: str, rcvhwm: int) -> zmq.Socket:
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, rcvhwm)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    sock.setsockopt(zmq.SUBSCRIBE, topic.encode() + b"\x00")
    return sock


def fast_sub(cfg: dict[str, Any]) -> None:
    """Whole batches from the batch PUB, counted by the `n` of each header, as fast as
    they come; the count goes to the `progress` file every 0.1 s (the capacity probe
    reads it). After the `stop` file appears, it drains until 1 s passes without one."""
    ctx = zmq.Context()
    sock = sub_socket(ctx, cfg["endpoint"], cfg["topic"], SUB_RCVHWM)
    ready()
    seqs, received, timeline = Seqs(), 0, []
    progress, tmp = Path(cfg["progress"]), Path(cfg["progress"] + ".tmp")
    next_tick = time.monotonic_ns()
    last_rx = stop_seen = 0
    unpack, recv = msgpack.unpackb, sock.recv_multipart
    while True:
        now = time.monotonic_ns()
        if now >= next_tick:
            timeline.append((now, received))
            tmp.write_text(f"{now} {received}")
            tmp.replace(progress)
            next_tick = now + TICK_NS
            if not stop_seen and os.path.exists(cfg["stop"]):
                stop_seen = now
            if stop_seen and (now - max(last_rx, stop_seen) > 1e9 or now - stop_seen > 60e9):
                break
        if not sock.poll(20):
            continue
        while True:
            try:
                _topic, header, _batch = recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            h = unpack(header)
            n = h.get("n", 0)
            received += n
            seqs.add(h["seq"], h["epoch"], n)
        last_rx = time.monotonic_ns()
    timeline.append((time.monotonic_ns(), received))
    report({"received": received, "gaps": seqs.gaps, "span": seqs.span(), "timeline": timeline})


def slow_sub(cfg: dict[str, Any]) -> None:
    """A raw SUB on the local PUB that reads only `rate` msg/s (three frames each) with
    a modest RCVHWM: it falls behind and the node drops messages for it, which the node
    should count (subscriber_queue_full). Once the `stop` file appears it reads what is
    still queued for it as fast as it can (until 1 s without a message), so that every
    message it lost is missing from what it received, not merely not yet read."""
    tight_timers()
    ctx = zmq.Context()
    sock = sub_socket(ctx, cfg["endpoint"], cfg["topic"], cfg["rcvhwm"])
    ready()
    seqs, received, start = Seqs(), 0, 0
    period = 1e9 / cfg["rate"]

    def take(limit: int) -> int:
        """Read up to `limit` queued messages; how many there were."""
        for i in range(limit):
            try:
                _topic, header, _payload = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return i
            if len(header) == 29 and header.startswith(HEADER):
                seq, epoch = int.from_bytes(header[6:14]), int.from_bytes(header[21:29])
            else:
                h = msgpack.unpackb(header)
                seq, epoch = h["seq"], h["epoch"]
            seqs.add(seq, epoch, 1)
        return limit

    while not os.path.exists(cfg["stop"]):
        if sock.poll(100):
            received += take(20)
            start = start or time.monotonic_ns()
            delay = start + received * period - time.monotonic_ns()
            if delay > 0:
                time.sleep(delay / 1e9)
    paced, until = received, time.monotonic() + 60
    while sock.poll(1000) and time.monotonic() < until:
        received += take(1000)
    report({"received": received, "paced": paced, "gaps": seqs.gaps, "span": seqs.span()})


def vm_rss(pid: int) -> int | None:
    """VmRSS of a process in bytes, from /proc/PID/status; None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@dataclass
class Watched:
    """One daemon as the monitor sees it."""

    name: str
    api: str
    pid: int
    calls: list[tuple[float, float, bool, bool]] = field(default_factory=list)  # t, s, ok, paused
    usage: list[tuple[float, int | None, float | None]] = field(default_factory=list)
    last_status: dict[str, Any] | None = None


class Monitor:
    """From the bench process: a `status` call to each node every 100 ms (a thread and a
    kept-open zdps.Client per node, so a node that does not answer delays only its own
    series), timed with perf_counter; and every 0.5 s each daemon's RSS and CPU."""

    def __init__(self, nodes: list[Watched], interval: float = 0.1, usage_s: float = 0.5):
        self.nodes = nodes
        self.interval = interval
        self.usage_s = usage_s
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._poll, args=(n,), daemon=True) for n in nodes
        ] + [threading.Thread(target=self._sample, daemon=True)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)

    def _poll(self, node: Watched) -> None:
        import zdps

        client = zdps.Client(node.api, timeout=STATUS_TIMEOUT)
        next_at = time.monotonic()
        try:
            while not self._stop.is_set():
                t = time.perf_counter()
                try:
                    status = client.status()
                except Exception:  # any failure is what is counted
                    status = None
                took = time.perf_counter() - t
                ok = status is not None and took <= STATUS_TIMEOUT
                paused = bool(status and status.get("paused"))
                node.calls.append((time.monotonic(), took, ok, paused))
                if status is not None:
                    node.last_status = status
                next_at = max(next_at + self.interval, time.monotonic())
                self._stop.wait(next_at - time.monotonic())
        finally:
            client.close(linger=0)

    def _sample(self) -> None:
        while not self._stop.is_set():
            for node in self.nodes:
                node.usage.append((time.monotonic(), vm_rss(node.pid), cpu.cpu_seconds(node.pid)))
            self._stop.wait(self.usage_s)


def status_now(api: str, timeout: float = 10.0) -> dict[str, Any]:
    """One status of a node, waited for (the snapshots around the overload phase)."""
    import zdps

    with zdps.Client(api, timeout=timeout) as client:
        return client.status()


def quantile(values: list[float], q: float) -> float | None:
    """Nearest-rank quantile (q in 0..1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))]


def at(timeline: list[tuple[int, ...]], t_ns: int, col: int = 1) -> float:
    """A cumulative count at time t_ns, linearly interpolated along (t_ns, count...)."""
    prev = None
    for point in timeline:
        if point[0] >= t_ns:
            if prev is None or point[0] == prev[0]:
                return float(point[col])
            frac = (t_ns - prev[0]) / (point[0] - prev[0])
            return prev[col] + frac * (point[col] - prev[col])
        prev = point
    return float(prev[col]) if prev else 0.0


def read_progress(path: Path) -> tuple[int, int]:
    """(t_ns, received) of the fast subscriber's progress file; (0, 0) before it exists."""
    with contextlib.suppress(OSError, ValueError):
        t, n = path.read_text().split()
        return int(t), int(n)
    return 0, 0
