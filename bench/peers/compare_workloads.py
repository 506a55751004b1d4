"""One measurement of `bench/compare`: a workload's parameters for a system, running it
against a peer or a zdps cluster while the daemons' RSS is sampled (and, for zdps, the
CPU time of every process), and the zdps-3 soak. psutil (through `rss`) is imported
only when a workload runs, after installation."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from . import cpu, runner
from .common import cpu_per_message, load_samples, result
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
    if workload == "stdin":  # zdps publish --no-ack, 300k lines of 64 B, into the C SUB
        count = p["stdin"]
        cfg.update(
            workload="stdin",
            size=64,
            count=count,
            subscribers=1,
            rate=None,
            sample_every=1,
            timeout_s=30 + count / 20_000,
        )
    elif workload in ("tput64", "tput1k"):
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
    """`zdps bench` for zdps-1, zdps-3 and its batch-aware (`--batches`) and replicated-ack
    (`--ack replicated`) variants on the same nodes and topic."""
    from . import zdps_nodes

    nodes = ctx.nodes(system)
    if system == "zdps-1":
        pub, subs = nodes["S"].api, [nodes["S"].api]
    elif cfg["workload"] == "fanout":
        pub, subs = nodes["A"].api, [nodes[n].api for n in ("A", "B", "C")]
    else:
        pub, subs = nodes["A"].api, [nodes["C"].api]
    return zdps_nodes.run_bench(
        pub_node=pub,
        sub_nodes=subs,
        topic=ctx.topics["zdps-1" if system == "zdps-1" else "zdps-3"],
        workload=cfg["workload"],
        size=cfg["size"],
        count=cfg["count"],
        subscribers=cfg["subscribers"],
        rate=cfg.get("rate"),
        timeout=cfg["timeout_s"] + 60,
        log_dir=ctx.log_dir,
        ack="replicated" if system == "zdps-3-repl" else "owner",
        batches=system == "zdps-3-batches",
    )


def _wait_subscribers(ask: str, topic: str, node: str, until: Any, timeout: float) -> bool:
    """Poll `zdps members` (asked of the node at `ask`) until `until(count at node)`."""
    from . import zdps_nodes

    deadline = time.monotonic() + timeout
    while True:
        try:
            if until(zdps_nodes.members(ask, topic).get(node, 0)):
                return True
        except (RuntimeError, ValueError):
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def run_csub_workload(ctx: Context, cfg: dict[str, Any]) -> dict[str, Any]:
    """zdps-3 into the C SUB on C's local PUB: from `zdps bench --subscribers 0` on A
    (`tput64`), or from `zdps publish --no-ack` on A reading lines on stdin (`stdin`).

    The C SUB starts first; the publisher only once the owner, B, lists C with a
    subscriber (`zdps members`). msgs/s: from the publisher's first send to the C SUB's
    last receipt.
    """
    from . import csub, zdps_nodes

    if ctx.csub is None:
        raise RuntimeError("the C SUB was not built")
    nodes, topic = ctx.nodes("zdps-3-csub"), ctx.topics["zdps-3"]
    owner, at = nodes["B"].api, "C"
    # Subscribers of an earlier run gone first, so the count seen next is this SUB's.
    _wait_subscribers(owner, topic, at, lambda n: n == 0, 10)
    stdin = cfg["workload"] == "stdin"
    samples = ctx.log_dir / "csub.lat"
    samples.unlink(missing_ok=True)
    sub_cfg = {**cfg, "samples_path": str(samples)}
    sub = csub.start(
        ctx.csub, endpoint=nodes[at].pub, topic=topic, cfg=sub_cfg, stamped=not stdin,
        log_dir=ctx.log_dir,
    )  # fmt: skip
    try:
        if not sub.wait_ready(cfg["setup_timeout_s"]):
            raise RuntimeError(f"C SUB not ready: {sub.error()}")
        if not _wait_subscribers(owner, topic, at, lambda n: n >= 1, cfg["setup_timeout_s"]):
            raise RuntimeError(f"B never listed a subscriber at C for {topic!r}")
        if stdin:
            pub = zdps_nodes.publish_stdin(
                api=nodes["A"].api, topic=topic, lines=cfg["count"], size=cfg["size"],
                timeout=cfg["timeout_s"] + 60, log_dir=ctx.log_dir,
            )  # fmt: skip
        else:
            pub = zdps_nodes.run_bench(
                pub_node=nodes["A"].api, sub_nodes=[], subscribers=0, topic=topic,
                workload="csub", size=cfg["size"], count=cfg["count"],
                timeout=cfg["timeout_s"] + 60, log_dir=ctx.log_dir,
            )  # fmt: skip
        got = sub.wait(cfg["timeout_s"] + 30)
        if got is None:
            raise RuntimeError(f"C SUB failed: {sub.error()}")
    finally:
        runner.stop(sub.proc, grace=1.0)
    last = got["last_ns"] if got["received"] else 0
    return result(
        published=pub["published"],
        received=got["received"],
        expected=cfg["count"],
        duration_s=(last - pub["start_ns"]) / 1e9 if last else 0.0,
        size=cfg["size"],
        subscribers=1,
        samples_ns=load_samples([str(samples)]) if not stdin else [],
        publish_s=pub.get("publish_s"),
        gaps=got["gaps"],
        duplicates=got["duplicates"],
        errors=got["errors"],
        failed=pub.get("failed", 0),
        timed_out=got["timed_out"],
        args=pub["args"],
        cpu_s={**pub["cpu_s"], "sub": got["cpu_s"]},
    )


def _cpu_per_message(
    before: dict[str, float | None], after: dict[str, float | None], res: dict[str, Any]
) -> None:
    """Add the daemons' CPU to what the run's own processes used (`cpu_s`), and both per
    message published (`cpu_us_per_msg`)."""
    used: dict[str, float] = {}
    for node, start in before.items():
        end = after.get(node)
        if start is not None and end is not None:
            used[node] = end - start
    used.update(res.get("cpu_s") or {})
    res.update(cpu_per_message(used, res.get("published") or 0))


def run_one(ctx: Context, system: str, workload: str, rep: int) -> dict[str, Any]:
    """One measurement as a record; a failure is recorded, so the others still run."""
    from .rss import Sampler

    record: dict[str, Any] = {"system": system, "workload": workload, "rep": rep}
    if system in ctx.skipped:
        record["skipped"] = ctx.skipped[system]
        return record
    cfg = workload_params(ctx, system, workload)
    started = time.monotonic()
    nodes = {nid: node.pid for nid, node in ctx.nodes(system).items()}
    try:
        with Sampler(ctx.daemons(system)) as sampler:
            before = {nid: cpu.cpu_seconds(pid) for nid, pid in nodes.items()}
            if system in PEER_MODULES:
                res = run_peer_workload(ctx, system, cfg)
            elif system == "zdps-3-csub":
                res = run_csub_workload(ctx, cfg)
            else:
                res = run_zdps_workload(ctx, system, cfg)
            after = {nid: cpu.cpu_seconds(pid) for nid, pid in nodes.items()}
        if nodes:
            _cpu_per_message(before, after, res)
        record["result"] = res
        record["rss"] = sampler.summary()
        figure = res["deliveries_per_s"] if workload == "fanout" else res["msgs_per_s"]
        lat = res.get("latency_us") or {}
        total = (res.get("cpu_us_per_msg") or {}).get("total")
        log(
            f"rep {rep + 1} {workload:<10} {system:<14} {figure:>12,.0f}/s  "
            f"p50 {lat.get('p50') or 0:>9,.1f} us  p99 {lat.get('p99') or 0:>9,.1f} us  "
            f"received {res['received']:,}/{res['expected']:,}"
            + (f"  cpu {total:.2f} us/msg" if total is not None else "")
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
