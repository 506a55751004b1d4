"""Raw pyzmq, the ceiling: PUSH->PULL one message per send, and XPUB->SUB for fan-out.

- `sub`: a PULL socket bound on the run's port.
- `pub`: a PUSH socket that connects and sends one stamped payload per `send()`; with
  `batch` > 1, it sends `batch` stamped payloads concatenated in one frame (the
  "batched" figure: the ceiling for a data path that batches).
- fan-out: `pub` binds an XPUB (XPUB_NODROP, so nothing is lost at the HWM) and waits
  until it has seen every subscription; `fsub` opens many SUB sockets in one process.

`pub` and `sub` report the CPU they used from READY to their result (`cpu_s`), and `sub`
that of the `helpers` it names (relay-4's relays), so that RESULTS.md can set the
floor's CPU per message beside zdps's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import zmq

from . import cpu
from .common import (
    Receiving,
    deadlines,
    now_ns,
    own_cpu_seconds,
    padding,
    ready,
    report,
    stamp,
    tight_timers,
)


def _endpoint(cfg: dict[str, Any]) -> str:
    return f"tcp://127.0.0.1:{cfg['port']}"


def _cpu_now(role: str, helpers: dict[str, int]) -> dict[str, float | None]:
    """CPU seconds so far: this process's (as ``role``), and each helper's."""
    return {role: own_cpu_seconds()} | {name: cpu.cpu_seconds(pid) for name, pid in helpers.items()}


def _cpu_since(began: dict[str, float | None], role: str, helpers: dict[str, int]) -> dict:
    """What each process of ``began`` used since (``cpu_s`` of a result)."""
    now = _cpu_now(role, helpers)
    return {
        name: end - start
        for name, end in now.items()
        if end is not None and (start := began.get(name)) is not None
    }


def sub(
    cfg: dict[str, Any],
    before_ready: Callable[[], None] | None = None,
    helpers: dict[str, int] | None = None,
) -> None:
    """``before_ready``: what must be up, once the PULL is bound, before READY;
    ``helpers``: processes (name -> pid) whose CPU is reported with this one's."""
    helpers = helpers or {}
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 200)
    sock.bind(_endpoint(cfg))
    batch = max(1, cfg.get("batch", 1))
    size = cfg["size"]
    rx = Receiving(cfg, cfg["count"])
    if before_ready is not None:
        before_ready()
    began = _cpu_now("sub", helpers)
    ready()
    recv = sock.recv
    add = rx.samples.add
    every = rx.samples.every
    received = first = last = 0
    expected = rx.expected
    while received < expected:
        try:
            msg = recv()
        except zmq.Again:
            rx.received, rx.last_ns = received, last
            if rx.expired():
                break
            continue
        last = now_ns()
        if not first:
            first = last
        if batch == 1:
            received += 1
            if not received % every:
                add(msg, last)
        else:
            n = len(msg) // size
            received += n
            add(msg, last)  # the first payload of every batch
    rx.received, rx.first_ns, rx.last_ns = received, first, last
    rx.finish(cfg, cpu_s=_cpu_since(began, "sub", helpers))
    sock.close()
    ctx.term()


def pub(cfg: dict[str, Any]) -> None:
    if cfg["workload"] == "fanout":
        return _fanout_pub(cfg)
    tight_timers()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 5000)
    sock.setsockopt(zmq.SNDTIMEO, int(cfg["timeout_s"] * 1000))
    sock.connect(_endpoint(cfg))
    if not sock.poll(10_000, zmq.POLLOUT):
        report({"published": 0, "start_ns": now_ns(), "end_ns": now_ns(), "error": "no peer"})
        return None
    began = _cpu_now("pub", {})
    ready()
    pad = padding(cfg["size"])
    send = sock.send
    count, batch = cfg["count"], max(1, cfg.get("batch", 1))
    published = 0
    start = now_ns()
    try:
        if batch == 1:
            for _ in deadlines(count, cfg.get("rate")):
                send(stamp(pad))
                published += 1
        else:
            for _ in range(count // batch):
                send(b"".join([stamp(pad) for _ in range(batch)]))
                published += batch
    except zmq.Again:
        pass
    end = now_ns()
    used = _cpu_since(began, "pub", {})
    report({"published": published, "start_ns": start, "end_ns": end, "cpu_s": used})
    sock.close()
    ctx.term()
    return None


def _fanout_pub(cfg: dict[str, Any]) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.LINGER, 5000)
    sock.setsockopt(zmq.XPUB_VERBOSE, 1)
    sock.setsockopt(zmq.XPUB_NODROP, 1)
    sock.setsockopt(zmq.SNDTIMEO, int(cfg["timeout_s"] * 1000))
    sock.bind(_endpoint(cfg))
    # Wait until every subscriber's subscription has arrived (bounded).
    wanted, seen = cfg["subscribers"], 0
    deadline = now_ns() + 30_000_000_000
    while seen < wanted and now_ns() < deadline:
        if sock.poll(200) and sock.recv()[:1] == b"\x01":
            seen += 1
    ready(subscriptions=seen)
    pad = padding(cfg["size"])
    send = sock.send
    published = 0
    start = now_ns()
    try:
        for _ in deadlines(cfg["count"], cfg.get("rate")):
            send(stamp(pad))
            published += 1
    except zmq.Again:
        pass
    report({"published": published, "start_ns": start, "end_ns": now_ns(), "subscriptions": seen})
    sock.close()
    ctx.term()


def fsub(cfg: dict[str, Any]) -> None:
    ctx = zmq.Context()
    poller = zmq.Poller()
    socks = []
    for _ in range(cfg["connections"]):
        s = ctx.socket(zmq.SUB)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SUBSCRIBE, b"")  # one topic: everything this publisher sends
        s.connect(_endpoint(cfg))
        poller.register(s, zmq.POLLIN)
        socks.append(s)
    rx = Receiving(cfg, cfg["count"] * len(socks))
    ready()
    add, every = rx.samples.add, rx.samples.every
    received = first = last = 0
    expected = rx.expected
    noblock = zmq.NOBLOCK
    again = zmq.Again
    while received < expected:
        events = poller.poll(200)
        if not events:
            rx.received, rx.last_ns = received, last
            if rx.expired():
                break
            continue
        for s, _ in events:
            recv = s.recv
            while True:
                try:
                    msg = recv(noblock)
                except again:
                    break
                last = now_ns()
                received += 1
                if not received % every:
                    add(msg, last)
        if not first:
            first = last
    rx.received, rx.first_ns, rx.last_ns = received, first, last
    rx.finish(cfg)
    for s in socks:
        s.close()
    ctx.term()
