"""The scale figures as Markdown tables, one row per run (bench/scale, docs/SCALE.md)."""

from __future__ import annotations

import math
from typing import Any

from .observe import KINDS


def _ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value * 1e3:.0f}" if value >= 0.1 else f"{value * 1e3:.1f}"


def _s(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def _spread(spread: dict[str, float], fmt) -> str:
    return " / ".join(fmt(spread[key]) for key in ("p50", "p99", "max"))


def _label(result: dict[str, Any]) -> str:
    options = result["options"]
    faults = [f"loss {options['loss']:.0%}" if options["loss"] else "",
              f"drop {options['drop']:.0%}" if options["drop"] else ""]  # fmt: skip
    extra = ", ".join(f for f in faults if f)
    return f"{options['nodes']}" + (f" ({extra})" if extra else "")


def _done(phase: dict[str, Any], text: str) -> str:
    """``text``, saying so when the phase timed out before every node knew."""
    if phase["converged"]:
        return text
    return f"{text} (timed out, {phase.get('missing', '?')} missing)"


def convergence(results: list[dict[str, Any]]) -> str:
    """Cold start, join and death: how long until every node knows."""
    rows = [
        "| N | cold start: all know all (s) | join known by all, p50 / p99 / max (ms) "
        "| new node knows all (ms) | death known by all, p50 / p99 / max (s) "
        "| false deaths | false suspicions | simulated s | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cold, join, crash = r["cold_start"], r["join"], r["crash"]
        rows.append(
            f"| {_label(r)} | {_done(cold, _s(cold['at']))} "
            f"| {_done(join, _spread(join['known_by'], _ms))} | {_ms(join['joiner_knows_all'])} "
            f"| {_done(crash, _spread(crash['known_by'], _s))} | {r['false_deaths']} "
            f"| {r['false_suspicions']} | {r['sim_seconds']:.1f} | {r['wall']['total']:.0f} |"
        )
    return "\n".join(rows)


def bandwidth(results: list[dict[str, Any]]) -> str:
    """Steady state: bytes each node sends a second, by kind."""
    rows = [
        "| N | " + " | ".join(KINDS) + " | total B/s | kbit/s | frames/s | busiest node B/s "
        "| CPU ms/s per node |",
        "|---|" + "---|" * (len(KINDS) + 5),
    ]
    for r in results:
        s = r["steady"]
        cells = " | ".join(f"{s[kind]:,.0f}" for kind in KINDS)
        rows.append(
            f"| {_label(r)} | {cells} | {s['total']:,.0f} | {s['total'] * 8 / 1e3:,.0f} "
            f"| {s['frames']:,.0f} | {s['max_node']:,.0f} | {_cpu(r)} |"
        )
    return "\n".join(rows)


def _cpu(result: dict[str, Any]) -> str:
    cpu = f"{result['steady']['cpu_ms_per_node_s']:.1f}"
    return f"{cpu} (profiled)" if result.get("profiled") else cpu


def costs(results: list[dict[str, Any]]) -> str:
    """Memory, the ring's cost per membership change, and the traffic of a join."""
    rows = [
        "| N | core memory per node (KB, ring excluded) | real ring (KB) "
        "| ring change (ms) | + old ring in handoffs, history held (ms) "
        "| view digest per change of the peers alive (µs) | topics moved by a join "
        "| cold start sent per node (KB) | join sent per node (KB) | of which peer lists (KB) "
        "| join sent by the new node (KB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ring, join, n = r["ring"], r["join"], r["options"]["nodes"]
        kb = {
            "core": r["memory"]["core_bytes"] / 1e3,
            "ring": ring["ring_bytes"] / 1e3,
            "cold": r["cold_start"]["bytes_per_node"] / 1e3,
            "join": join["bytes_per_node"] / 1e3,
            "peers": join["peers_bytes_per_node"] / 1e3,
            "joiner": join.get("joiner_bytes", float("nan")) / 1e3,
        }
        rows.append(
            f"| {_label(r)} | {kb['core']:,.0f} | {kb['ring']:,.0f} "
            f"| {ring['rebuild_ms']:.1f} | {ring['old_ring_ms']:.1f} | {ring['digest_us']:.0f} "
            f"| {ring['moved']:.2%} (1/N = {1 / n:.2%}) "
            f"| {kb['cold']:,.1f} | {kb['join']:,.1f} | {kb['peers']:,.1f} | {kb['joiner']:,.1f} |"
        )
    return "\n".join(rows)


def markdown(results: list[dict[str, Any]]) -> str:
    return "\n\n".join([convergence(results), bandwidth(results), costs(results)]) + "\n"
