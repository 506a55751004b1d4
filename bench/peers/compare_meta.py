"""What `bench/compare` records besides the figures: the machine, the versions of every
component, and the text that says how each system and workload is measured."""

from __future__ import annotations

import contextlib
import os
import platform
import time
from pathlib import Path
from typing import Any

from .compare_context import Context

METHOD = """\
- Every payload carries the publisher's `time.monotonic_ns()` in its first 8 bytes,
  written just before the message is handed to the client library; the subscriber
  subtracts it from its own clock on receipt (one-way latency; CLOCK_MONOTONIC is
  system-wide on Linux). The publisher and the subscriber(s) are separate processes.
- Throughput is end to end: received messages / (publisher's first send -> the last
  receipt at any subscriber). Throughput runs sample the latency of every 16th message
  (shown as "under load": queueing included); the latency workload samples every message.
  Each throughput run sends 1,000,000 messages of 64 B (300,000 of 1 KiB; `--quick`
  fewer) per system and repetition: at 2M msg/s a run of 200,000 lasts 0.1 s and
  measures mostly how long the pipeline takes to fill, not a rate.
- The latency workloads send at a fixed 1,000, 10,000 or 50,000 msg/s, each message at
  its absolute deadline t0 + i/rate (sleeping, no busy wait; a late wake-up is not
  carried over).
- relay-4: raw pyzmq through three Python relay processes (PULL -> PUSH), the same four
  hops and five processes as zdps-3 with nothing done at each hop: its floor.
- raw pyzmq: PUSH -> PULL, one message per `send()` (the ceiling for a Python data path);
  the batched row sends 100 stamped payloads per frame. Fan-out: XPUB (XPUB_NODROP, so
  nothing is dropped at the HWM) -> 100 SUB sockets in 2 processes.
- Redis: redis-server started by the benchmark (no persistence, pub/sub output buffers
  unlimited so a lagging subscriber is not disconnected); redis-py with hiredis; the
  publisher pipelines 100 PUBLISH commands (transaction=False); at the fixed rate each
  message is its own PUBLISH written at its deadline, with the replies read as they
  arrive. Subscribers use `PubSub.get_message()`; fan-out uses 100 connections in 2
  processes, multiplexed with `selectors`.
- NATS: nats-server started by the benchmark (slow-consumer limits raised); nats-py on
  asyncio, `publish()` in a loop then `flush()` (at the fixed rate, a turn of the event
  loop after each message while on time, so it is written at once); subscribers with a
  callback; fan-out is 100 connections in 2 processes.
- pyre: node A SHOUTs to a group node B joined; discovery beacons pinned to loopback
  (127.255.255.255) on a port picked per run. pyre has no fan-out row, and its counts
  are capped (it is two orders of magnitude slower), which does not change a rate.
- zdps: `zdps start` nodes on free loopback ports (kept up for the whole run), with
  `--pub-hwm 1000000` (default 100,000): the cluster delivers a run's messages faster
  than a Python SUB reads them, and a node drops (and counts) what a SUB is more than
  `pub_hwm` behind on; the workloads through `zdps bench --json`, whose publisher puts
  1,024 messages in a frame (`publish_stream`'s default) when it runs unpaced; paced,
  it yields `zdps.FLUSH` before each wait, so a message leaves when due (with those
  also due, when it ran late), not once a frame is full.
  zdps-1: publisher and subscribers on one node. zdps-3: publisher on A, the topic owned by B and
  replicated to A (R = 1, the default), the subscriber on C, a raw Python SUB on C's
  local PUB (zdps bench's own loop: plain receives of the three frames); fan-out
  subscribers spread round-robin over A, B and C. The other zdps-3 rows use the same
  nodes and topic: zdps-3-batches (`zdps bench --batches`: the subscriber receives whole
  batches from C's batch PUB), zdps-3-repl (`--ack replicated`), and zdps-3-csub: a C
  SUB (bench/peers/csub.c, built with gcc against the system libzmq) on C's local PUB,
  started first, with `zdps bench --subscribers 0` publishing on A once B lists C with a
  subscriber (`zdps members`); it reads the fixed 29-byte header, checks seq continuity
  per epoch and samples the latency of every 16th message; msgs/s from the publisher's
  start to its last receipt.
- stdin: `zdps publish --no-ack TOPIC` on A, fed 300,000 lines of 64 B on a pipe once it
  is connected and waits on its stdin (Python's start-up is not counted), into the C
  SUB on C; msgs/s from the first line written to the last receipt (no latency: lines
  carry no stamp).
- CPU per message, zdps rows: utime + stime from /proc/PID/stat of each node over the
  run and of `zdps bench`'s processes (sampled while they run), the C SUB's own
  getrusage, `zdps publish`'s from wait4; divided by the messages published. Raw pyzmq
  rows (`raw-zmq`, `relay-4`): each process's own getrusage, and relay-4's relays' from
  /proc, from READY to the result.
- Order: for each repetition, each workload, each system (the system order rotates per
  repetition), so the systems share the same machine conditions."""


NOTES = {
    "tput64": "One publisher -> one subscriber, as fast as the publisher can send. "
    "`zdps-3 ÷ system` > 1 means zdps on three nodes moved more messages per second.",
    "tput1k": "As above with 1,024-byte payloads.",
    "latency1k": "As at 10k msg/s below, at 1,000 msg/s: every message is a wake-up at each hop.",
    "latency": "Lower is better; `zdps-3 ÷ system` < 1 means zdps on three nodes was "
    "faster. `achieved msg/s` checks that the fixed rate was held. `relay-4` is the floor "
    "for zdps-3: the same four hops and five processes, each relay a Python recv/send.",
    "latency50k": "As at 10k msg/s above, at 50,000 msg/s.",
    "fanout": "One topic, 100 subscribers: raw pyzmq, Redis and NATS with 100 subscriber "
    "connections in 2 processes; zdps-1 with 100 subscribers on its one node; zdps-3 with "
    "100 subscribers spread over A, B and C. deliveries/s counts every copy received.",
    "stdin": "`zdps publish --no-ack TOPIC` on A reading 300,000 lines of 64 B from a pipe "
    "(written once it waits on its stdin), into the C SUB on C: from the first line "
    "written to the last receipt. The lines carry no send time, so there is no latency.",
}


def machine_info() -> dict[str, Any]:
    """The machine, and what else was busy on it, for reading the figures."""
    import psutil

    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    # Other processes that were busy when the run started (for reading the figures).
    procs = list(psutil.process_iter(["pid", "name", "cmdline"]))
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.cpu_percent(None)
    time.sleep(1.0)
    busy = []
    me = os.getpid()
    for p in procs:
        with contextlib.suppress(psutil.Error):
            pct = p.cpu_percent(None)
            if pct >= 5 and p.pid != me:
                cmd = " ".join((p.info.get("cmdline") or [p.info.get("name") or "?"])[:3])
                busy.append(f"`{cmd[:70]}` {pct:.0f}%")
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": psutil.virtual_memory().total / 2**30,
        "kernel": platform.release(),
        "load_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "other_load": busy[:8],
        "idle": idle_states(),
        "wake_us": wake_cost_us(),
    }


def idle_states() -> str:
    """How this machine's idle CPUs wait, which sets what a wake-up costs: on a KVM guest
    whose vCPUs halt at once, each one goes through the hypervisor (docs/DEPLOY.md §8)."""
    cpuidle = Path("/sys/devices/system/cpu/cpuidle")
    try:
        driver = (cpuidle / "current_driver").read_text().strip()
    except OSError:
        return "unknown (no cpuidle in /sys)"
    poll = Path("/sys/module/haltpoll/parameters/guest_halt_poll_ns")
    with contextlib.suppress(OSError):
        return f"{driver}, guest_halt_poll_ns {poll.read_text().strip()}"
    return driver


def idle_line(states: str) -> str:
    """How RESULTS.md and bench/hops say it."""
    return f"idle CPUs (cpuidle driver): {states} (docs/DEPLOY.md §8)"


def wake_cost_us(period: float = 100e-6, seconds: float = 0.5) -> float:
    """The CPU a thread spends on one sleep of ``period`` and the wake-up after it, in µs
    (the median of ``seconds`` of them). Every process on a message's path pays about
    this for each message that wakes it: on a guest whose idle vCPUs halt it is 15-35 µs,
    close to a node's work for a message."""
    costs = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        began = time.thread_time_ns()
        time.sleep(period)
        costs.append(time.thread_time_ns() - began)
    costs.sort()
    return costs[len(costs) // 2] / 1e3


def wake_line(cost_us: float) -> str:
    """How RESULTS.md and bench/hops say it."""
    return f"a sleep of 100 µs and its wake-up: {cost_us:.1f} µs of the thread's CPU"


def versions(ctx: Context) -> dict[str, str]:
    """The version of every component measured, so a run can be reproduced."""
    import importlib.metadata as md

    import zmq

    def dist(name: str) -> str:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "not installed"

    return {
        "python": platform.python_version(),
        "pyzmq / libzmq": f"{zmq.__version__} / {zmq.zmq_version()}",
        "redis-server (Debian)": ctx.redis.version if ctx.redis else "not run",
        "nats-server (Debian)": ctx.nats.version if ctx.nats else "not run",
        "redis-py": dist("redis"),
        "hiredis": dist("hiredis"),
        "nats-py": dist("nats-py"),
        "zeromq-pyre (pyre)": dist("zeromq-pyre"),
        "zdps": ctx.zdps_version,
        "matplotlib / psutil": f"{dist('matplotlib')} / {dist('psutil')}",
    }
