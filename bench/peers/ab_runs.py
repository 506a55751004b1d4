"""One `bench/ab` run: a revision's own nodes started, `zdps bench` through them, and the
CPU time of every process, as well as that of the rest of the machine meanwhile."""

from __future__ import annotations

import os
import resource
import time
from typing import Any

from . import cpu, zdps_rev
from .revisions import Revision

SIZE = 64
WORKLOADS = {
    # name: (node ids, publisher's node, subscriber's node, the topic's owner)
    "one": (["A"], "A", "A", "A"),
    "three": (["A", "B", "C"], "A", "C", "B"),
    "repl": (["A", "B", "C"], "A", "C", "B"),
    "lat1k": (["A", "B", "C"], "A", "C", "B"),
    "lat10k": (["A", "B", "C"], "A", "C", "B"),
}
DEFAULT_WORKLOADS = ("one", "three")
RATES = {"lat1k": 1_000, "lat10k": 10_000}  # fixed-rate workloads: their msgs/s
ACKS = {"repl": "replicated"}  # workloads whose publisher waits for more than the owner
LATENCY_SECONDS = 5.0  # a fixed-rate run sends for this long, whatever --count says
RETRIES = 3  # with --max-others: how many times a pair may be run again


def run_one(
    rev: Revision, workload: str, topic: str, count: int, rep: int, position: int, attempt: int
) -> dict[str, Any]:
    """One workload on one revision, on nodes of its own; loss or a dead node is an error."""
    node_ids, pub_at, sub_at, _owner = WORKLOADS[workload]
    rate = RATES.get(workload, 0)
    if rate:
        count = round(rate * LATENCY_SECONDS)
    name = f"{workload}-rep{rep}-{attempt}"
    log_dir = rev.logs / name
    log_dir.mkdir()
    began = time.monotonic()
    try:
        cluster = zdps_rev.cluster(rev.zdps, f"{rev.side}-{workload}", node_ids, log_dir)
    except Exception as exc:
        raise RuntimeError(f"{rev.side} ({rev.label}) failed to start its nodes: {exc}") from exc
    try:
        before = {nid: cpu.cpu_seconds(node.pid) for nid, node in cluster.nodes.items()}
        start = _snapshot()
        res, used = zdps_rev.run_bench(
            rev.zdps,
            pub_node=cluster.nodes[pub_at].api,
            sub_node=cluster.nodes[sub_at].api,
            topic=topic,
            count=count,
            rate=rate,
            ack=ACKS.get(workload, "owner"),
            size=SIZE,
            timeout=60 + count / 2_000,
            log_dir=log_dir,
            name="bench",
        )
        after = {nid: cpu.cpu_seconds(node.pid) for nid, node in cluster.nodes.items()}
        end = _snapshot()
    except Exception as exc:
        raise RuntimeError(f"{rev.side} ({rev.label}) {workload}: {exc}") from exc
    finally:
        cluster.close()
    for nid in node_ids:
        if before[nid] is None or after[nid] is None:
            raise RuntimeError(f"{rev.side} {workload}: node {nid} exited during the run")
    used = {**{f"node {nid}": after[nid] - before[nid] for nid in node_ids}, **used}
    used["total"] = sum(used.values())
    # What else the machine did meanwhile: busy CPU time not spent by this run's processes
    # (nor by bench/ab itself), and time the hypervisor stole, as % of all CPUs.
    capacity = (end["wall"] - start["wall"]) * (os.cpu_count() or 1)
    busy, steal, own = ((end[k] - start[k]) for k in ("busy", "steal", "self"))
    others = busy - used["total"] - own
    if res.get("lost") or res.get("failed"):
        raise RuntimeError(f"{rev.side} {workload}: lost or failed messages: {res}")
    return {
        "rep": rep,
        "workload": workload,
        "side": rev.side,
        "position": position,  # 0: ran first in this repetition's pair
        "attempt": attempt,  # > 0: the pair was run again (--max-others)
        "msgs_per_s": res["msgs_per_s"],
        "cpu_s": {k: round(v, 3) for k, v in used.items()},
        "cpu_us_per_msg": {k: round(v * 1e6 / count, 3) for k, v in used.items()},
        "wall_s": round(time.monotonic() - began, 2),
        "others_pct": round(max(0.0, 100 * others / capacity), 1),
        "steal_pct": round(100 * steal / capacity, 1),
        "bench": res,
    }


def _snapshot() -> dict[str, float]:
    """The machine's busy and stolen CPU seconds, this process's own, and the time."""
    busy, steal = cpu.machine_ticks()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "busy": busy / cpu.CLK_TCK,
        "steal": steal / cpu.CLK_TCK,
        "self": usage.ru_utime + usage.ru_stime,
        "wall": time.monotonic(),
    }
