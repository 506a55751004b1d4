"""Turns the runs of `bench/compare` into bench/RESULTS.md, bench/results.json and
bench/results.png."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

SYSTEM_LABELS = {
    "raw-zmq": "raw pyzmq PUSH/PULL (ceiling)",
    "raw-zmq-batch": "raw pyzmq, 100 payloads per frame",
    "redis": "Redis pub/sub, redis-py + hiredis",
    "nats": "NATS, nats-py (asyncio)",
    "pyre": "pyre SHOUT",
    "zdps-1": "zdps, one node",
    "zdps-3": "zdps, three nodes (A -> owner B -> C)",
}
FANOUT_LABELS = {"raw-zmq": "raw pyzmq XPUB -> 100 SUB (ceiling)"}
WORKLOAD_TITLES = {
    "tput64": "Throughput, 64 B payloads",
    "tput1k": "Throughput, 1 KiB payloads",
    "latency": "One-way latency at a fixed 10,000 msg/s (64 B)",
    "fanout": "Fan-out: one topic to 100 subscribers (64 B)",
}
SHORT_TITLES = {
    "tput64": "throughput 64 B",
    "tput1k": "throughput 1 KiB",
    "latency": "latency at 10k msg/s",
    "fanout": "fan-out to 100",
}
LATENCY_KEYS = ("p50", "p90", "p99", "p99.9", "max")


# ------------------------------------------------------------------- aggregation


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


def _figure(workload: str, entry: dict[str, Any] | None) -> float | None:
    if not entry or not entry.get("ok"):
        return None
    if workload == "fanout":
        return entry.get("deliveries_per_s")
    if workload == "latency":
        return (entry.get("latency_us") or {}).get("p50")
    return entry.get("msgs_per_s")


def targets(
    summary: dict[str, dict[str, dict[str, Any]]], soak: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The figures the issue judges zdps by, each with met / not met / not measured."""
    z = {w: summary.get(w, {}).get("zdps-3") for w in WORKLOAD_TITLES}

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    t64 = _figure("tput64", z["tput64"])
    nats = _figure("tput64", summary.get("tput64", {}).get("nats"))
    redis = _figure("tput64", summary.get("tput64", {}).get("redis"))
    lat = (z["latency"] or {}).get("latency_us") or {}
    fan = _figure("fanout", z["fanout"])
    zdps_runs = [
        e
        for w in WORKLOAD_TITLES
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


# ----------------------------------------------------------------------- format


def _num(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or not b:
        return "n/a"
    return f"{a / b:.2f}x"


def _status(entry: dict[str, Any] | None) -> str | None:
    if entry is None:
        return "not run"
    if entry.get("skipped"):
        return f"skipped: {entry['skipped']}"
    if not entry.get("ok"):
        return "failed: " + "; ".join(str(e)[:160] for e in entry.get("errors", []))
    return None


def _loss(entry: dict[str, Any]) -> str:
    text = f"{entry['received']:,}/{entry['expected']:,} ({entry['lost']:,} lost"
    if entry.get("failed"):
        text += f", {entry['failed']:,} publishes failed"
    return text + ")"


def _spread(entry: dict[str, Any]) -> str:
    values = [v for v in entry.get("per_rep", []) if v is not None]
    if len(values) < 2:
        return ""
    mid = statistics.median(values)
    return f"±{(max(values) - min(values)) / 2 / mid * 100:.0f}%" if mid else ""


def _throughput_table(workload: str, by_system: dict[str, dict[str, Any]], systems: list[str]):
    raw = _figure(workload, by_system.get("raw-zmq"))
    z3 = _figure(workload, by_system.get("zdps-3"))
    lines = [
        "| system | msgs/s | spread | MB/s | ÷ raw ceiling | zdps-3 ÷ system "
        "| received/expected | p50 / p99 µs under load |",
        "|---|--:|--:|--:|--:|--:|---|---|",
    ]
    for system in systems:
        entry = by_system.get(system)
        status = _status(entry)
        label = SYSTEM_LABELS.get(system, system)
        if status:
            lines.append(f"| {label} | {status} | | | | | | |")
            continue
        fig = _figure(workload, entry)
        lat = entry["latency_us"]
        lines.append(
            f"| {label} | {_num(fig)} | {_spread(entry)} | {_num(entry['mb_per_s'], 1)} "
            f"| {_ratio(fig, raw)} | {_ratio(z3, fig)} | {_loss(entry)} "
            f"| {_num(lat['p50'])} / {_num(lat['p99'])} |"
        )
    return lines


def _latency_table(by_system: dict[str, dict[str, Any]], systems: list[str]) -> list[str]:
    raw = (by_system.get("raw-zmq") or {}).get("latency_us") or {}
    z3 = (by_system.get("zdps-3") or {}).get("latency_us") or {}
    lines = [
        "| system | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | achieved msg/s "
        "| p50 ÷ raw | zdps-3 p50 ÷ system p50 | zdps-3 p99 ÷ system p99 | received/expected |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for system in systems:
        entry = by_system.get(system)
        status = _status(entry)
        label = SYSTEM_LABELS.get(system, system)
        if status:
            lines.append(f"| {label} | {status} | | | | | | | | | |")
            continue
        lat = entry["latency_us"]
        lines.append(
            f"| {label} | {_num(lat['p50'])} | {_num(lat['p90'])} | {_num(lat['p99'])} "
            f"| {_num(lat['p99.9'])} | {_num(lat['max'])} | {_num(entry['msgs_per_s'])} "
            f"| {_ratio(lat['p50'], raw.get('p50'))} | {_ratio(z3.get('p50'), lat['p50'])} "
            f"| {_ratio(z3.get('p99'), lat['p99'])} | {_loss(entry)} |"
        )
    return lines


def _fanout_table(by_system: dict[str, dict[str, Any]], systems: list[str]) -> list[str]:
    raw = _figure("fanout", by_system.get("raw-zmq"))
    z3 = _figure("fanout", by_system.get("zdps-3"))
    lines = [
        "| system | deliveries/s | spread | msgs/s per subscriber | ÷ raw ceiling "
        "| zdps-3 ÷ system | received/expected | p50 / p99 µs |",
        "|---|--:|--:|--:|--:|--:|---|---|",
    ]
    for system in systems:
        entry = by_system.get(system)
        status = _status(entry)
        label = FANOUT_LABELS.get(system, SYSTEM_LABELS.get(system, system))
        if status:
            lines.append(f"| {label} | {status} | | | | | | |")
            continue
        fig = _figure("fanout", entry)
        lat = entry["latency_us"]
        lines.append(
            f"| {label} | {_num(fig)} | {_spread(entry)} | {_num(entry['msgs_per_s'])} "
            f"| {_ratio(fig, raw)} | {_ratio(z3, fig)} | {_loss(entry)} "
            f"| {_num(lat['p50'])} / {_num(lat['p99'])} |"
        )
    return lines


def _rss_table(runs: list[dict[str, Any]], workloads: list[str]) -> list[str]:
    """Per daemon and workload: RSS MiB at the start of its first run, peak, at the end of
    its last run."""
    cells: dict[str, dict[str, list[dict[str, float]]]] = {}
    for run in runs:
        for daemon, s in (run.get("rss") or {}).items():
            cells.setdefault(daemon, {}).setdefault(run["workload"], []).append(s)
    if not cells:
        return ["No daemon was sampled (no daemon-backed system ran)."]
    header = "| daemon | " + " | ".join(SHORT_TITLES[w] for w in workloads)
    lines = [header + " |", "|---|" + "---|" * len(workloads)]
    for daemon in sorted(cells):
        row = [daemon]
        for w in workloads:
            samples = cells[daemon].get(w)
            if not samples:
                row.append("")
                continue
            row.append(
                f"{samples[0]['start_mib']:.1f} → {max(s['peak_mib'] for s in samples):.1f}"
                f" → {samples[-1]['end_mib']:.1f}"
            )
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _target_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| target | this run | met |", "|---|--:|---|"]
    for row in rows:
        value = row["value"]
        if isinstance(value, float | int) and not isinstance(value, bool):
            shown = (
                f"{value:.2f}{row['unit']}"
                if row["unit"] == "x"
                else f"{_num(value, 1 if row['unit'] == 'us' else 0)} {row['unit']}"
            )
        else:
            shown = "not measured" if value is None else str(value)
        met = {True: "**met**", False: "**not met**", None: "not measured"}[row["met"]]
        if row["met"] is None and value is not None:
            met = "not settled (run shorter than the target's 60 s)"
        lines.append(f"| {row['target']} | {shown} | {met} |")
    return lines


def write_markdown(path: Path, data: dict[str, Any]) -> None:
    meta, summary = data["meta"], data["summary"]
    systems, workloads = data["config"]["systems"], data["config"]["workloads"]
    v = meta["versions"]
    m = meta["machine"]
    out = [
        "# bench/compare: zdps side by side with its peers",
        "",
        f"Command: `{meta['command']}`  ",
        f"Date: {meta['date']} (wall time {meta['wall_s']:.0f} s)  ",
        f"Mode: {data['config']['mode']}, {data['config']['reps']} interleaved repetition(s); "
        "figures are medians over the repetitions, losses are summed.",
        "",
        "## Machine",
        "",
        f"- {m['nproc']} CPUs: {m['cpu']}; RAM {m['ram_gib']:.1f} GiB; Linux {m['kernel']}",
        f"- load average at start {m['load_start']}, at end {m['load_end']}",
    ]
    if m.get("other_load"):
        out.append(
            "- other processes busy on the machine at the start (not part of this run): "
            + ", ".join(m["other_load"])
        )
    out += [
        "",
        "## Versions",
        "",
        "| component | version |",
        "|---|---|",
        *(f"| {k} | {val} |" for k, val in v.items()),
        "",
        "## Targets (zdps, three nodes)",
        "",
        *_target_lines(data["targets"]),
        "",
    ]
    for workload in workloads:
        by_system = summary.get(workload, {})
        order = [s for s in systems if s in by_system]
        out += [f"## {WORKLOAD_TITLES[workload]}", ""]
        if workload in ("tput64", "tput1k"):
            out += _throughput_table(workload, by_system, order)
        elif workload == "latency":
            out += _latency_table(by_system, order)
        else:
            out += _fanout_table(by_system, order)
        out.append("")
        out.append(data["notes"].get(workload, ""))
        out.append("")
    out += [
        "## Daemon RSS (MiB: start of the first run → peak → end of the last run)",
        "",
        *_rss_table(data["runs"], workloads),
        "",
        "Sampled every 0.25 s from /proc (psutil) while each workload ran against that "
        "daemon. raw pyzmq and pyre have no daemon.",
        "",
    ]
    soak = data.get("soak")
    if soak:
        out += [
            f"### RSS over a steady run: zdps-3 at {soak['rate']:,} msg/s for "
            f"{soak['duration_s']:.0f} s",
            "",
            "| node | start | early (20-40 %) | late (last 20 %) | peak | end | growth "
            "| slope MiB/min | flat |",
            "|---|--:|--:|--:|--:|--:|--:|--:|---|",
        ]
        for node, f in soak.get("nodes", {}).items():
            if f.get("flat") is None:
                out.append(f"| {node} | {f.get('reason', 'n/a')} | | | | | | | |")
                continue
            out.append(
                f"| {node} | {f['start_mib']:.1f} | {f['early_mib']:.1f} | {f['late_mib']:.1f} "
                f"| {f['peak_mib']:.1f} | {f['end_mib']:.1f} | {f['growth_mib']:+.1f} "
                f"| {f['slope_mib_per_min']:+.2f} | {'yes' if f['flat'] else 'no'} |"
            )
        if soak.get("error"):
            out.append(f"\nThe soak run failed: {soak['error']}")
        elif soak.get("result"):
            r = soak["result"]
            out.append(
                f"\nDuring the soak: {r.get('received', 0):,}/{r.get('expected', 0):,} received, "
                f"p50 {_num((r.get('latency_us') or {}).get('p50'))} µs, "
                f"p99 {_num((r.get('latency_us') or {}).get('p99'))} µs."
            )
        out += [
            "",
            "Flat means: the median RSS of the last 20 % of the samples is at most "
            "max(2 MiB, 3 %) above the median of the samples at 20-40 % of the run "
            "(after warm-up).",
            "",
        ]
    out += ["## How each system is measured", "", data["method"], ""]
    if data.get("problems"):
        out += ["## Problems in this run", ""]
        out += [f"- {p}" for p in data["problems"]]
        out.append("")
    out += ["![results](results.png)", ""]
    path.write_text("\n".join(out))


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


# ------------------------------------------------------------------------ chart


def write_chart(path: Path, data: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary, systems = data["summary"], data["config"]["systems"]
    fig, axes = plt.subplots(2, 2, figsize=(15, 10))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    def bars(
        ax: Any,
        groups: list[tuple[str, dict[str, float | None]]],
        ylabel: str,
        log: bool,
        lines: tuple[tuple[float, str], ...] = (),
    ) -> None:
        names = [s for s in systems if any(g.get(s) is not None for _, g in groups)]
        if not names:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
            return
        width = 0.8 / max(1, len(groups))
        for i, (label, values) in enumerate(groups):
            xs = [j + (i - (len(groups) - 1) / 2) * width for j in range(len(names))]
            ys = [values.get(n) or 0 for n in names]
            rects = ax.bar(xs, ys, width, label=label, color=colors[i % len(colors)])
            for rect, y in zip(rects, ys, strict=True):
                if y:
                    ax.annotate(
                        f"{y:,.0f}" if y >= 10 else f"{y:.1f}",
                        (rect.get_x() + rect.get_width() / 2, y),
                        ha="center", va="bottom", fontsize=7, rotation=90,
                        xytext=(0, 2), textcoords="offset points",
                    )  # fmt: skip
        for value, label in lines:  # the targets, dashed
            ax.axhline(value, color="grey", linestyle="--", linewidth=1)
            ax.annotate(
                label, (0.99, value), xycoords=("axes fraction", "data"),
                fontsize=7, color="dimgrey", va="bottom", ha="right",
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
            )  # fmt: skip
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=20)
        ax.set_ylabel(ylabel)
        present = [v for _, g in groups for v in g.values() if v] + [v for v, _ in lines]
        if log and present:
            ax.set_yscale("log")
            ax.set_ylim(min(present) / 2, max(present) * 6)  # room for the labels
        elif present:
            ax.set_ylim(0, max(present) * 1.3)
        ax.grid(axis="y", which="both", alpha=0.3)
        if len(groups) > 1:
            ax.legend(fontsize=8, loc="upper left")

    def figures(workload: str, key: str = "") -> dict[str, float | None]:
        out = {}
        for system, entry in summary.get(workload, {}).items():
            if key:
                out[system] = ((entry.get("latency_us") or {}) if entry.get("ok") else {}).get(key)
            else:
                out[system] = _figure(workload, entry)
        return out

    bars(
        axes[0][0],
        [("64 B", figures("tput64")), ("1 KiB", figures("tput1k"))],
        "msgs/s (log)",
        True,
        ((500_000, "target: zdps-3 64 B >= 500k msg/s"),),
    )
    axes[0][0].set_title("Throughput, one publisher -> one subscriber")
    bars(
        axes[0][1],
        [("p50", figures("latency", "p50")), ("p99", figures("latency", "p99"))],
        "µs (log; lower is better)",
        True,
        ((200, "target: zdps-3 p50 <= 200 µs"), (500, "target: zdps-3 p99 <= 500 µs")),
    )
    axes[0][1].set_title("One-way latency at 10,000 msg/s, 64 B")
    bars(
        axes[1][0],
        [("deliveries/s", figures("fanout"))],
        "deliveries/s (log)",
        True,
        ((3e6, "target: zdps-3 >= 3M deliveries/s"),),
    )
    axes[1][0].set_title("Fan-out: one topic -> 100 subscribers")
    peaks: dict[str, float] = {}
    for run in data["runs"]:
        for daemon, s in (run.get("rss") or {}).items():
            peaks[daemon] = max(peaks.get(daemon, 0.0), s["peak_mib"])
    ax = axes[1][1]
    if peaks:
        names = sorted(peaks)
        ax.bar(range(len(names)), [peaks[n] for n in names], color=colors[3 % len(colors)])
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=20)
        ax.set_ylabel("MiB")
        ax.grid(axis="y", alpha=0.3)
    ax.set_title("Peak daemon RSS over the run")
    fig.suptitle(
        f"bench/compare ({data['config']['mode']}, {data['meta']['date']}, "
        f"{data['meta']['machine']['nproc']} CPUs)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
