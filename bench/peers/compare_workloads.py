"""One measurement of `bench/compare`: a workload's parameters for a system, running it
against a peer or a zdps cluster while the daemons' RSS is sampled, and the zdps-3 soak.
psutil (through `rss`) is imported only when a workload runs, after installation."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from . import runner
from .compare_context import Context, log

PEER_MODULES = {
    "raw-zmq": "zmq_raw",
    "raw-zmq-batch": "zmq_raw",
    "redis": "redis_pubsub",
    "nats": "nats_pubsub",
    "pyre": "pyre_shout",
    "relay-4": "zmq_relay",
}
RATE = 10_000  # msg/s of the latency workload and the soak
LATENCY_RATES = {"latency1k": 1_000, "latency": RATE, "latency50k": 50_000}  # msg/s
FANOUT_SUBSCRIBERS = 100
BATCH = 100


def workload_params(ctx: Context, system: str, workload: str) -> dict[str, Any]:
    """The same workload for every system, scaled down only where a system needs it."""
    p = ctx.profile
    cfg: dict[str, Any] = {"idle_s": p["idle_s"], "setup_timeout_s": 40}
    if workload in ("tput64", "tput1k"):
        count = p[workload]
        if system == "pyre":
            count = min(count, p["pyre_max"])
        if system == "raw-zmq-batch":
            count -= count % BATCH
            cfg["batch"] = BATCH
        cfg.update(
            workload="tput",
            size=64 if workload == "tput64" else 1024,
            count=count,
            subscribers=1,
            rate=None,
            sample_every=16,
            timeout_s=30 + count / 2_000,
        )
    elif workload in LATENCY_RATES:
        rate = LATENCY_RATES[workload]
        count = int(rate * p["latency_s"])
        cfg.update(
            workload="latency",
            size=64,
            count=count,
            subscribers=1,
            rate=rate,
            sample_every=1,
            timeout_s=30 + count / rate * 3,
        )
    else:
        count = p["fanout"]
        cfg.update(
            workload="fanout",
            size=64,
            count=count,
            subscribers=FANOUT_SUBSCRIBERS,
            rate=None,
            sample_every=16,
            timeout_s=30 + count * FANOUT_SUBSCRIBERS / 20_000,
        )
    return cfg


def run_peer_workload(ctx: Context, system: str, cfg: dict[str, Any]) -> dict[str, Any]:
    if system in ("raw-zmq", "raw-zmq-batch"):
        cfg["port"] = runner.free_port()
    elif system == "relay-4":
        cfg["port"] = runner.free_port()
        cfg["relay_ports"] = [runner.free_port() for _ in range(3)]
    elif system == "redis":
        cfg.update(port=ctx.redis.port, channel="bench")
    elif system == "nats":
        cfg.update(url=ctx.nats.url, subject="bench")
    elif system == "pyre":
        cfg.update(group="bench", beacon_port=runner.free_port(socket.SOCK_DGRAM))
    return runner.run_peer(
        PEER_MODULES[system],
        cfg,
        sub_procs=2 if cfg["workload"] == "fanout" else 1,
        log_dir=ctx.log_dir,
    )


def run_zdps_workload(ctx: Context, system: str, cfg: dict[str, Any]) -> dict[str, Any]:
    from . import zdps_nodes

    nodes = ctx.clusters[system].nodes
    if system == "zdps-1":
        pub, subs = nodes["S"].api, [nodes["S"].api]
    elif cfg["workload"] == "fanout":
        pub, subs = nodes["A"].api, [nodes[n].api for n in ("A", "B", "C")]
    else:
        pub, subs = nodes["A"].api, [nodes["C"].api]
    return zdps_nodes.run_bench(
        pub_node=pub,
        sub_nodes=subs,
        topic=ctx.topics[system],
        workload=cfg["workload"],
        size=cfg["size"],
        count=cfg["count"],
        subscribers=cfg["subscribers"],
        rate=cfg.get("rate"),
        timeout=cfg["timeout_s"] + 60,
        log_dir=ctx.log_dir,
    )


def run_one(ctx: Context, system: str, workload: str, rep: int) -> dict[str, Any]:
    """One measurement as a record; a failure is recorded, so the others still run."""
    from .rss import Sampler

    record: dict[str, Any] = {"system": system, "workload": workload, "rep": rep}
    if system in ctx.skipped:
        record["skipped"] = ctx.skipped[system]
        return record
    cfg = workload_params(ctx, system, workload)
    started = time.monotonic()
    try:
        with Sampler(ctx.daemons(system)) as sampler:
            if system in PEER_MODULES:
                res = run_peer_workload(ctx, system, cfg)
            else:
                res = run_zdps_workload(ctx, system, cfg)
        record["result"] = res
        record["rss"] = sampler.summary()
        figure = res["deliveries_per_s"] if workload == "fanout" else res["msgs_per_s"]
        lat = res.get("latency_us") or {}
        log(
            f"rep {rep + 1} {workload:<7} {system:<13} {figure:>12,.0f}/s  "
            f"p50 {lat.get('p50') or 0:>9,.1f} us  p99 {lat.get('p99') or 0:>9,.1f} us  "
            f"received {res['received']:,}/{res['expected']:,}"
        )
    except Exception as exc:  # one failed measurement must not stop the others
        record["error"] = f"{type(exc).__name__}: {exc}"
        ctx.problems.append(f"rep {rep + 1} {workload} {system}: {record['error'][:400]}")
        log(f"rep {rep + 1} {workload} {system} FAILED: {record['error'][:400]}")
    record["wall_s"] = time.monotonic() - started
    record["loadavg_1m"] = os.getloadavg()[0]
    record["config"] = {k: v for k, v in cfg.items() if k not in ("samples_path",)}
    return record


def run_soak(ctx: Context) -> dict[str, Any] | None:
    """zdps-3 at a steady 10k msg/s; RSS of A, B and C every 0.5 s; is it flat?"""
    from . import zdps_nodes
    from .rss import Sampler, flatness

    if "zdps-3" not in ctx.clusters:
        return None
    seconds = ctx.profile["soak_s"]
    nodes = ctx.clusters["zdps-3"].nodes
    soak: dict[str, Any] = {"rate": RATE, "duration_s": float(seconds)}
    log(f"soak: zdps-3 at {RATE:,} msg/s for {seconds} s, sampling RSS")
    with Sampler(ctx.daemons("zdps-3"), interval=0.5) as sampler:
        try:
            soak["result"] = zdps_nodes.run_bench(
                pub_node=nodes["A"].api,
                sub_nodes=[nodes["C"].api],
                topic=ctx.topics["zdps-3"],
                workload="soak",
                size=64,
                count=None,
                rate=RATE,
                duration=seconds,
                timeout=seconds * 3 + 60,
                log_dir=ctx.log_dir,
            )
        except Exception as exc:
            soak["error"] = f"{type(exc).__name__}: {exc}"
            ctx.problems.append(f"soak: {soak['error'][:400]}")
    soak["nodes"] = {name: flatness(points) for name, points in sampler.series.items()}
    soak["series_mib"] = {
        name: [(round(t, 2), round(v / 2**20, 2)) for t, v in points]
        for name, points in sampler.series.items()
    }
    return soak
