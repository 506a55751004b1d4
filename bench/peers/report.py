"""The figures of a `bench/compare` run: medians over the repetitions, the targets zdps
is judged by, and results.json. `report_markdown` and `report_chart` draw RESULTS.md and
results.png from what this module computes."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

WORKLOADS = ("tput64", "tput1k", "latency1k", "latency", "latency50k", "fanout", "stdin")
LATENCY_KEYS = ("p50", "p90", "p99", "p99.9", "max")
ZDPS = ("zdps-1", "zdps-3", "zdps-3-batches", "zdps-3-csub", "zdps-3-repl")
# Raw pyzmq: its processes report their own CPU too (peers.zmq_raw), so RESULTS.md shows
# what the ceiling and relay-4, the floor of zdps-3's latency, cost per message.
RAW = ("raw-zmq", "raw-zmq-batch", "relay-4")
# Processes whose CPU a run records (zdps's and raw pyzmq's), in the order RESULTS.md
# shows them: relay-4's relays stand in A, B and C.
CPU_KEYS = ("S", "A", "B", "C", "pub", "sub", "sub1", "sub2", "bench", "total")


def _median(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def aggregate(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """summary[workload][system]: medians over the repetitions, losses summed."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        grouped.setdefault((run["workload"], run["system"]), []).append(run)
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for (workload, system), reps in grouped.items():
        ok = [r["result"] for r in reps if r.get("result")]
        entry: dict[str, Any] = {
            "reps": len(reps),
            "ok": len(ok),
            "failures": [r["error"] for r in reps if r.get("error")],
            "skipped": next((r["skipped"] for r in reps if r.get("skipped")), None),
        }
        if ok:
            entry.update(
                {
                    "msgs_per_s": _median([r.get("msgs_per_s") for r in ok]),
                    "deliveries_per_s": _median([r.get("deliveries_per_s") for r in ok]),
                    "mb_per_s": _median([r.get("mb_per_s") for r in ok]),
                    "latency_us": {
                        k: _median([(r.get("latency_us") or {}).get(k) for r in ok])
                        for k in LATENCY_KEYS
                    },
                    "received": sum(r.get("received", 0) for r in ok),
                    "expected": sum(r.get("expected", 0) for r in ok),
                    "lost": sum(r.get("lost", 0) for r in ok),
                    "failed": sum(r.get("failed", 0) or 0 for r in ok),
                    # seq checks: zdps bench's and the C SUB's (+ frames it could not read)
                    "gaps": sum(r.get("gaps", 0) or 0 for r in ok),
                    "duplicates": sum(r.get("duplicates", 0) or 0 for r in ok),
                    "errors": sum(r.get("errors", 0) or 0 for r in ok),
                    "cpu_us_per_msg": _cpu_medians(ok),
                    "per_rep": [
                        r.get("deliveries_per_s" if workload == "fanout" else "msgs_per_s")
                        for r in ok
                    ],
                }
            )
        summary.setdefault(workload, {})[system] = entry
    return summary


def _cpu_medians(results: list[dict[str, Any]]) -> dict[str, float]:
    """Per process: the median CPU µs per message over the repetitions that have it."""
    keys = [k for k in CPU_KEYS if any(k in (r.get("cpu_us_per_msg") or {}) for r in results)]
    return {k: _median([(r.get("cpu_us_per_msg") or {}).get(k) for r in results]) for k in keys}


def figure(workload: str, entry: dict[str, Any] | None) -> float | None:
    """The one figure systems are compared by: deliveries/s, p50 latency or msgs/s."""
    if not entry or not entry.get("ok"):
        return None
    if workload == "fanout":
        return entry.get("deliveries_per_s")
    if workload.startswith("latency"):
        return (entry.get("latency_us") or {}).get("p50")
    return entry.get("msgs_per_s")


def targets(
    summary: dict[str, dict[str, dict[str, Any]]], soak: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Issue 9's targets, each computed from this run, with met / not met / not measured.

    All on the three-node path (publisher on A, topic owned by B, subscriber on C), 64 B.
    """

    def fig(workload: str, system: str) -> float | None:
        return figure(workload, summary.get(workload, {}).get(system))

    def lat(workload: str, system: str, key: str) -> float | None:
        entry = summary.get(workload, {}).get(system) or {}
        return (entry.get("latency_us") or {}).get(key) if entry.get("ok") else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    t64 = fig("tput64", "zdps-3")
    batches = fig("tput64", "zdps-3-batches")
    zdps_runs = [
        e for w in WORKLOADS for s in ZDPS if (e := summary.get(w, {}).get(s)) and e.get("ok")
    ]
    soak_result = (soak or {}).get("result") or {}
    bad = ("lost", "gaps", "duplicates", "errors")
    lost = (
        sum(e.get(k, 0) or 0 for e in zdps_runs for k in bad)
        + sum(soak_result.get(k, 0) or 0 for k in bad)
        if zdps_runs or soak_result
        else None
    )
    # A run that failed (zdps bench exits 1 on any loss) has no figures to sum: it
    # fails the target by itself, or its loss would vanish from the table.
    failed_runs = sum(
        len(e.get("failures") or [])
        for w in WORKLOADS
        for s in ZDPS
        if (e := summary.get(w, {}).get(s))
    ) + (1 if soak and soak.get("error") else 0)
    flat_values = [v.get("flat") for v in (soak or {}).get("nodes", {}).values()]
    flat = None if not flat_values or None in flat_values else all(flat_values)
    soak_s = (soak or {}).get("duration_s")
    rows = [
        ("raw Python SUB on C (zdps-3): >= 400,000 msg/s", t64, ">=", 400_000, "msg/s"),
        (
            "raw Python SUB on C: >= 0.45x raw pyzmq PUSH/PULL (zdps-3 ÷ raw-zmq)",
            ratio(t64, fig("tput64", "raw-zmq")),
            ">=",
            0.45,
            "x",
        ),
        ("C SUB on C (zdps-3-csub): >= 600,000 msg/s", fig("tput64", "zdps-3-csub"), ">=",
         600_000, "msg/s"),
        ("batch-aware zdps client on C (zdps-3-batches): >= 1,200,000 msg/s", batches, ">=",
         1_200_000, "msg/s"),
        ("batch-aware zdps client: >= 12x NATS via nats-py (zdps-3-batches ÷ nats)",
         ratio(batches, fig("tput64", "nats")), ">=", 12.0, "x"),
        ("zdps publish --no-ack, 300k lines on stdin, into the C SUB on C: >= 300,000 msg/s",
         fig("stdin", "zdps-3-csub"), ">=", 300_000, "msg/s"),
        ("at 10k msg/s (zdps-3): p50 <= 1 ms", lat("latency", "zdps-3", "p50"), "<=", 1000,
         "us"),
        (
            "at 10k msg/s: p99 <= 3x the bare 4-hop relay chain's p99 (zdps-3 ÷ relay-4)",
            ratio(lat("latency", "zdps-3", "p99"), lat("latency", "relay-4", "p99")),
            "<=",
            3.0,
            "x",
        ),
        (
            "replicated acks (R = 1) >= 0.8x owner acks (zdps-3-repl ÷ zdps-3, 64 B)",
            ratio(fig("tput64", "zdps-3-repl"), t64),
            ">=",
            0.8,
            "x",
        ),
    ]  # fmt: skip
    out = []
    for name, value, op, bound, unit in rows:
        met = None if value is None else (value >= bound if op == ">=" else value <= bound)
        out.append({"target": name, "value": value, "unit": unit, "met": met})
    out.append(
        {
            "target": "no loss, duplicate, gap or unreadable message (every zdps row, "
            "workload and repetition, and the soak)",
            "value": f"{lost or 0} lost, {failed_runs} failed run(s)" if failed_runs else lost,
            "unit": "lost",
            "met": False if failed_runs else (None if lost is None else lost == 0),
        }
    )
    short = bool(soak_s) and soak_s < 59
    out.append(
        {
            "target": "daemon RSS flat over a 60 s run (zdps-3, 10k msg/s)",
            "value": None
            if flat is None
            else f"{'flat' if flat else 'growing'} over {soak_s:.0f} s",
            "unit": "",
            # A shorter soak (--quick) says something, but does not settle a 60 s target.
            "met": None if short and flat else flat,
        }
    )
    return out


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Every number of the run; values JSON does not know are written as text."""
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
