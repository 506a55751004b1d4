"""The figures of a `bench/compare` run: medians over the repetitions, the targets zdps
is judged by, and results.json. `report_markdown` and `report_chart` draw RESULTS.md and
results.png from what this module computes."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

WORKLOADS = ("tput64", "tput1k", "latency1k", "latency", "latency50k", "fanout")
LATENCY_KEYS = ("p50", "p90", "p99", "p99.9", "max")


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
            "errors": [r["error"] for r in reps if r.get("error")],
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
                    "per_rep": [
                        r.get("deliveries_per_s" if workload == "fanout" else "msgs_per_s")
                        for r in ok
                    ],
                }
            )
        summary.setdefault(workload, {})[system] = entry
    return summary


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
    """The figures the issue judges zdps by, each with met / not met / not measured."""
    z = {w: summary.get(w, {}).get("zdps-3") for w in WORKLOADS}

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    t64 = figure("tput64", z["tput64"])
    nats = figure("tput64", summary.get("tput64", {}).get("nats"))
    redis = figure("tput64", summary.get("tput64", {}).get("redis"))
    lat = (z["latency"] or {}).get("latency_us") or {}
    fan = figure("fanout", z["fanout"])
    zdps_runs = [
        e
        for w in WORKLOADS
        for s in ("zdps-1", "zdps-3")
        if (e := summary.get(w, {}).get(s)) and e.get("ok")
    ]
    soak_result = (soak or {}).get("result") or {}
    lost = (
        sum(e.get("lost", 0) for e in zdps_runs) + soak_result.get("lost", 0)
        if zdps_runs or soak_result
        else None
    )
    flat_values = [v.get("flat") for v in (soak or {}).get("nodes", {}).values()]
    flat = None if not flat_values or None in flat_values else all(flat_values)
    soak_s = (soak or {}).get("duration_s")
    rows = [
        ("three-node 64 B throughput >= 500,000 msg/s", t64, ">=", 500_000, "msg/s"),
        ("three-node 64 B >= 2x NATS-py (same run)", ratio(t64, nats), ">=", 2.0, "x"),
        ("three-node 64 B >= 3x Redis-py (same run)", ratio(t64, redis), ">=", 3.0, "x"),
        ("three-node latency at 10k msg/s: p50 <= 200 us", lat.get("p50"), "<=", 200, "us"),
        ("three-node latency at 10k msg/s: p99 <= 500 us", lat.get("p99"), "<=", 500, "us"),
        ("fan-out to 100 subscribers over 3 nodes >= 3M deliveries/s", fan, ">=", 3e6, "/s"),
        (
            "no loss (zdps-1 and zdps-3: every workload, repetition and the soak)",
            lost,
            "<=",
            0,
            "lost",
        ),
    ]
    out = []
    for name, value, op, bound, unit in rows:
        met = None if value is None else (value >= bound if op == ">=" else value <= bound)
        out.append({"target": name, "value": value, "unit": unit, "met": met})
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
