"""RESULTS.md for `bench/compare`: one table per workload, the targets, daemon RSS and
the soak, from the summary that `report` computed."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .compare_meta import idle_line, wake_line
from .report import CPU_KEYS, RAW, ZDPS, figure

SYSTEM_LABELS = {
    "raw-zmq": "raw pyzmq PUSH/PULL (ceiling)",
    "raw-zmq-batch": "raw pyzmq, 100 payloads per frame",
    "relay-4": "raw pyzmq, 4 hops through 3 Python relays (the floor for zdps-3)",
    "redis": "Redis pub/sub, redis-py + hiredis",
    "nats": "NATS, nats-py (asyncio)",
    "pyre": "pyre SHOUT",
    "zdps-1": "zdps, one node",
    "zdps-3": "zdps, three nodes (A -> owner B -> C), raw Python SUB on C",
    "zdps-3-batches": "zdps, three nodes, batch-aware zdps client on C (`--batches`)",
    "zdps-3-csub": "zdps, three nodes, C SUB on C's local PUB",
    "zdps-3-repl": "zdps, three nodes, replicated acks (`--ack replicated`, R = 1)",
}
STDIN_LABELS = {"zdps-3-csub": "zdps publish --no-ack (stdin) on A -> C SUB on C"}
FANOUT_LABELS = {"raw-zmq": "raw pyzmq XPUB -> 100 SUB (ceiling)"}
WORKLOAD_TITLES = {
    "tput64": "Throughput, 64 B payloads",
    "tput1k": "Throughput, 1 KiB payloads",
    "latency1k": "One-way latency at a fixed 1,000 msg/s (64 B)",
    "latency": "One-way latency at a fixed 10,000 msg/s (64 B)",
    "latency50k": "One-way latency at a fixed 50,000 msg/s (64 B)",
    "fanout": "Fan-out: one topic to 100 subscribers (64 B)",
    "stdin": "zdps publish --no-ack from 300,000 lines on stdin (64 B)",
}
SHORT_TITLES = {
    "tput64": "throughput 64 B",
    "tput1k": "throughput 1 KiB",
    "latency1k": "latency at 1k msg/s",
    "latency": "latency at 10k msg/s",
    "latency50k": "latency at 50k msg/s",
    "fanout": "fan-out to 100",
    "stdin": "stdin 300k lines",
}
CPU_LABELS = {
    "S": "node", "A": "A", "B": "B", "C": "C", "pub": "publisher", "sub": "subscriber",
    "sub1": "subscriber 1", "sub2": "subscriber 2", "bench": "zdps bench", "total": "total",
}  # fmt: skip


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
        return "failed: " + "; ".join(str(e)[:160] for e in entry.get("failures", []))
    return None


def _system_rows(
    by_system: dict[str, dict[str, Any]],
    systems: list[str],
    columns: int,
    row: Callable[[dict[str, Any]], str],
    labels: dict[str, str] | None = None,
) -> list[str]:
    """One table row per system: the cells ``row`` makes of its figures, or why it has
    none followed by ``columns`` empty cells."""
    lines = []
    for system in systems:
        entry = by_system.get(system)
        label = (labels or {}).get(system, SYSTEM_LABELS.get(system, system))
        status = _status(entry)
        if status:
            lines.append(f"| {label} | {status} |" + " |" * columns)
        else:
            lines.append(f"| {label} | {row(entry)} |")
    return lines


def _loss(entry: dict[str, Any]) -> str:
    text = f"{entry['received']:,}/{entry['expected']:,} ({entry['lost']:,} lost"
    if entry.get("failed"):
        text += f", {entry['failed']:,} publishes failed"
    for key, what in (("gaps", "gap"), ("duplicates", "duplicate"), ("errors", "unreadable")):
        if entry.get(key):
            text += f", {entry[key]:,} {what}"
    if entry.get("failures"):
        text += f"; {len(entry['failures'])} run(s) failed, not counted here"
    return text + ")"


def _spread(entry: dict[str, Any]) -> str:
    values = [v for v in entry.get("per_rep", []) if v is not None]
    if len(values) < 2:
        return ""
    mid = statistics.median(values)
    return f"±{(max(values) - min(values)) / 2 / mid * 100:.0f}%" if mid else ""


def _throughput_table(
    workload: str,
    by_system: dict[str, dict[str, Any]],
    systems: list[str],
    labels: dict[str, str] | None = None,
) -> list[str]:
    raw = figure(workload, by_system.get("raw-zmq"))
    z3 = figure(workload, by_system.get("zdps-3"))
    lines = [
        "| system | msgs/s | spread | MB/s | ÷ raw ceiling | zdps-3 ÷ system "
        "| received/expected | p50 / p99 µs under load |",
        "|---|--:|--:|--:|--:|--:|---|---|",
    ]

    def row(entry: dict[str, Any]) -> str:
        fig = figure(workload, entry)
        lat = entry["latency_us"]
        return (
            f"{_num(fig)} | {_spread(entry)} | {_num(entry['mb_per_s'], 1)} "
            f"| {_ratio(fig, raw)} | {_ratio(z3, fig)} | {_loss(entry)} "
            f"| {_num(lat['p50'])} / {_num(lat['p99'])}"
        )

    return lines + _system_rows(by_system, systems, 6, row, labels)


def _latency_table(by_system: dict[str, dict[str, Any]], systems: list[str]) -> list[str]:
    raw = (by_system.get("raw-zmq") or {}).get("latency_us") or {}
    z3 = (by_system.get("zdps-3") or {}).get("latency_us") or {}
    lines = [
        "| system | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | achieved msg/s "
        "| p50 ÷ raw | zdps-3 p50 ÷ system p50 | zdps-3 p99 ÷ system p99 | received/expected |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]  # relay-4 is the floor for zdps-3: the same hops and processes, nothing done

    def row(entry: dict[str, Any]) -> str:
        lat = entry["latency_us"]
        return (
            f"{_num(lat['p50'])} | {_num(lat['p90'])} | {_num(lat['p99'])} "
            f"| {_num(lat['p99.9'])} | {_num(lat['max'])} | {_num(entry['msgs_per_s'])} "
            f"| {_ratio(lat['p50'], raw.get('p50'))} | {_ratio(z3.get('p50'), lat['p50'])} "
            f"| {_ratio(z3.get('p99'), lat['p99'])} | {_loss(entry)}"
        )

    return lines + _system_rows(by_system, systems, 9, row)


def _fanout_table(by_system: dict[str, dict[str, Any]], systems: list[str]) -> list[str]:
    raw = figure("fanout", by_system.get("raw-zmq"))
    z3 = figure("fanout", by_system.get("zdps-3"))
    lines = [
        "| system | deliveries/s | spread | msgs/s per subscriber | ÷ raw ceiling "
        "| zdps-3 ÷ system | received/expected | p50 / p99 µs |",
        "|---|--:|--:|--:|--:|--:|---|---|",
    ]

    def row(entry: dict[str, Any]) -> str:
        fig = figure("fanout", entry)
        lat = entry["latency_us"]
        return (
            f"{_num(fig)} | {_spread(entry)} | {_num(entry['msgs_per_s'])} "
            f"| {_ratio(fig, raw)} | {_ratio(z3, fig)} | {_loss(entry)} "
            f"| {_num(lat['p50'])} / {_num(lat['p99'])}"
        )

    return lines + _system_rows(by_system, systems, 6, row, FANOUT_LABELS)


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


def _cpu_table(summary: dict[str, dict[str, dict[str, Any]]], workloads: list[str]) -> list[str]:
    """CPU µs per message published, per process, for every zdps and raw pyzmq row."""
    rows = [
        (w, s, entry["cpu_us_per_msg"])
        for w in workloads
        for s in (*ZDPS, *RAW)
        if (entry := summary.get(w, {}).get(s)) and entry.get("ok") and entry.get("cpu_us_per_msg")
    ]
    if not rows:
        return ["No run recorded its CPU time."]
    keys = [k for k in CPU_KEYS if any(k in cpu for _, _, cpu in rows)]
    lines = [
        "| workload | system | " + " | ".join(CPU_LABELS[k] for k in keys) + " |",
        "|---|---|" + "--:|" * len(keys),
    ]
    for workload, system, cpu in rows:
        cells = [_num(cpu.get(k), 2) if k in cpu else "" for k in keys]
        lines.append(f"| {SHORT_TITLES[workload]} | {system} | " + " | ".join(cells) + " |")
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
    """RESULTS.md: the figures with what it takes to read them: machine, versions, method."""
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
    if m.get("idle"):
        out.append(f"- {idle_line(m['idle'])}")
    if m.get("wake_us"):
        out.append(f"- {wake_line(m['wake_us'])}")
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
        "## Targets (issue 9: zdps, three nodes, A -> owner B -> C, 64 B)",
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
        elif workload == "stdin":
            out += _throughput_table(workload, by_system, order, STDIN_LABELS)
        elif workload.startswith("latency"):
            out += _latency_table(by_system, order)
        else:
            out += _fanout_table(by_system, order)
        out.append("")
        out.append(data["notes"].get(workload, ""))
        out.append("")
    out += [
        "## CPU per message, per process (zdps, and raw pyzmq beside it)",
        "",
        *_cpu_table(summary, workloads),
        "",
        "µs of CPU (utime + stime from /proc/PID/stat) per message published, medians "
        "over the repetitions: each node (A, B, C; `node` for zdps-1) over the run, the "
        "`zdps bench` publisher and subscriber processes and its coordinator, the C SUB "
        "(its own getrusage) and `zdps publish` (wait4, less its start-up). `total` is "
        "the nodes, publisher and subscriber: the coordinator (`zdps bench`) mostly starts "
        "Python and waits, a cost per run, not per message. /proc counts in ticks of "
        "10 ms, so a short run (`--quick`) rounds each figure by up to 10 ms ÷ messages. "
        "With `--subscribers 0` and the C SUB there is no zdps subscriber process; in "
        "fan-out the subscribers hold 100 subscriptions in 2 processes. raw pyzmq's "
        "publisher and subscriber count their own CPU from READY to their result "
        "(getrusage), and relay-4's relays theirs from /proc over the same span, in the "
        "A, B and C columns: the places of zdps-3's nodes on the same path.",
        "",
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
