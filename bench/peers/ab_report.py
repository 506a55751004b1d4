"""The `bench/ab` report: medians and head/base ratios per workload, the markdown table
printed on stdout, its verdict, and the command that reproduces the run."""

from __future__ import annotations

import argparse
import shlex
import statistics
from typing import Any

from .ab_runs import DEFAULT_WORKLOADS, RETRIES, SIZE
from .revisions import WORKING_TREE, Revision

THRESHOLD = 0.95  # head/base below this is a regression of more than 5 %


def summarise(runs: list[dict[str, Any]], workloads: list[str], reps: int) -> dict[str, Any]:
    """Per workload: medians per side, and head/base over the paired repetitions."""
    out: dict[str, Any] = {}
    for workload in workloads:
        by = {
            side: sorted(
                (r for r in runs if r["workload"] == workload and r["side"] == side),
                key=lambda r: r["rep"],
            )
            for side in ("base", "head")
        }
        if not by["base"] or len(by["base"]) != len(by["head"]):
            continue
        rate = {s: statistics.median(r["msgs_per_s"] for r in by[s]) for s in by}
        ratios = [
            h["msgs_per_s"] / b["msgs_per_s"] for b, h in zip(by["base"], by["head"], strict=True)
        ]
        procs = list(by["base"][0]["cpu_us_per_msg"])
        cpu: dict[str, dict[str, Any]] = {}
        for p in procs:
            cpu[p] = {s: statistics.median(r["cpu_us_per_msg"][p] for r in by[s]) for s in by}
            per_rep = [
                h["cpu_us_per_msg"][p] / b["cpu_us_per_msg"][p]
                for b, h in zip(by["base"], by["head"], strict=True)
                if b["cpu_us_per_msg"][p]
            ]
            cpu[p]["rep_ratios"] = per_rep
        out[workload] = {
            "reps": len(ratios),
            "msgs_per_s": rate,
            "ratio": rate["head"] / rate["base"],
            "rep_ratios": ratios,
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "median_rep_ratio": statistics.median(ratios),
            "cpu_us_per_msg": cpu,
            "latency_us": {
                s: {
                    q: statistics.median(r["bench"]["latency_us"][q] for r in by[s])
                    for q in ("p50", "p99", "max")
                }
                for s in by
            },
            "others_pct": _spread([r["others_pct"] for s in by for r in by[s]]),
            "steal_pct": _spread([r["steal_pct"] for s in by for r in by[s]]),
        }
    return out


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "max": max(values)}


def markdown(
    summary: dict[str, Any], revs: dict[str, Revision], args: argparse.Namespace, reruns: int
) -> str:
    """The report on stdout: throughput, CPU per message, other load, verdicts, how to rerun."""
    base, head = revs["base"], revs["head"]
    lines = [
        f"## zdps A/B: base {base.label} vs head {head.label}",
        "",
        f"{SIZE} B payloads, {args.count:,} messages per run, 1 publisher -> 1 subscriber, "
        f"medians of {args.reps} interleaved repetitions.",
        "",
        "| workload | base msgs/s | head msgs/s | head/base | per-rep head/base (min-max) |",
        "|---|--:|--:|--:|--:|",
    ]
    for workload, s in summary.items():
        lines.append(
            f"| {workload} | {s['msgs_per_s']['base']:,.0f} | {s['msgs_per_s']['head']:,.0f} "
            f"| {s['ratio']:.3f} | {s['ratio_min']:.3f}-{s['ratio_max']:.3f} |"
        )
    lines += [
        "",
        "One-way latency, publisher to subscriber (µs; medians over the repetitions; the "
        "fixed-rate workloads are the ones that measure it):",
        "",
        "| workload | base p50 | head p50 | base p99 | head p99 | head/base p99 "
        "| base max | head max |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for workload, s in summary.items():
        lat = s["latency_us"]
        p99 = lat["head"]["p99"] / lat["base"]["p99"] if lat["base"]["p99"] else float("nan")
        lines.append(
            f"| {workload} | {lat['base']['p50']:,.0f} | {lat['head']['p50']:,.0f} "
            f"| {lat['base']['p99']:,.0f} | {lat['head']['p99']:,.0f} | {p99:.2f} "
            f"| {lat['base']['max']:,.0f} | {lat['head']['max']:,.0f} |"
        )
    lines += [
        "",
        "CPU time per message, per process (utime + stime; medians, µs/msg):",
        "",
        "| workload | process | base | head | head/base | per-rep head/base (min-max) |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for workload, s in summary.items():
        for proc, v in s["cpu_us_per_msg"].items():
            ratio = v["head"] / v["base"] if v["base"] else float("nan")
            spread = (
                f"{min(v['rep_ratios']):.2f}-{max(v['rep_ratios']):.2f}" if v["rep_ratios"] else ""
            )
            lines.append(
                f"| {workload} | {proc} | {v['base']:.2f} | {v['head']:.2f} | {ratio:.2f} "
                f"| {spread} |"
            )
    lines += [
        "",
        "Other load while the runs were measured (busy CPU time of processes not in the run, "
        "and hypervisor steal, as % of all CPUs; median / max over the runs):",
        "",
    ]
    for workload, s in summary.items():
        o, st = s["others_pct"], s["steal_pct"]
        lines.append(
            f"- {workload}: others {o['median']:.0f} % / {o['max']:.0f} %, "
            f"steal {st['median']:.0f} % / {st['max']:.0f} %"
        )
    if args.max_others is not None:
        lines.append(
            f"- {reruns} pair(s) run again because other load exceeded {args.max_others:g} % "
            f"(at most {RETRIES} times each; the last attempt is kept)"
        )
    lines.append("")
    for workload, s in summary.items():
        lines.append(f"- {workload}: head/base {s['ratio']:.3f}: {_verdict(s)}")
    lines += [
        "",
        f"base: {base.commit} ({base.version})",
        f"head: {_describe(head)} ({head.version})",
        "",
        "Reproduce:",
        "",
        "```sh",
        reproduce(args, revs),
        "```",
    ]
    return "\n".join(lines)


def _verdict(s: dict[str, Any]) -> str:
    if s["ratio"] >= THRESHOLD:
        verdict = "no regression > 5 %"
    elif s["ratio_max"] < 1:
        verdict = "REGRESSION > 5 %: head/base below 0.95, and head slower in every repetition"
    else:
        verdict = (
            "head/base below 0.95, but head was faster in some repetitions: "
            "inconclusive, rerun with more --reps"
        )
    if s["others_pct"]["median"] > 10:
        verdict += (
            f" (other processes used {s['others_pct']['median']:.0f} % of the machine: noisy)"
        )
    return verdict


def _describe(rev: Revision) -> str:
    if rev.rev != WORKING_TREE:
        return rev.commit
    changed = f", {len(rev.changed)} changed files" if rev.changed else ", no changes"
    return f"working tree on {rev.commit}{changed}, tree sha256 {rev.tree_sha256[:16]}"


def reproduce(args: argparse.Namespace, revs: dict[str, Revision]) -> str:
    """The command line that runs the same comparison again, with resolved revisions."""
    cmd = [
        "bench/ab",
        "--base", revs["base"].reproducible_rev,
        "--head", revs["head"].reproducible_rev,
        "--reps", str(args.reps),
        "--count", str(args.count),
    ]  # fmt: skip
    if tuple(args.workloads) != DEFAULT_WORKLOADS:
        cmd += ["--workloads", ",".join(args.workloads)]
    if args.max_others is not None:
        cmd += ["--max-others", f"{args.max_others:g}"]
    if args.json:
        cmd += ["--json", str(args.json)]
    return shlex.join(cmd)
