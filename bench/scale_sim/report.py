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


def _table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table: the header, its rule, a row per run."""
    lines = ["| " + " | ".join(cells) + " |" for cells in [header, *rows]]
    lines.insert(1, "|" + "---|" * len(header))
    return "\n".join(lines)


def convergence(results: list[dict[str, Any]]) -> str:
    """Cold start, join and death: how long until every node knows."""
    header = [
        "N", "cold start: all know all (s)", "join known by all, p50 / p99 / max (ms)",
        "new node knows all (ms)", "death known by all, p50 / p99 / max (s)", "false deaths",
        "false suspicions", "simulated s", "wall s",
    ]  # fmt: skip
    rows = []
    for r in results:
        cold, join, crash = r["cold_start"], r["join"], r["crash"]
        rows.append([
            _label(r), _done(cold, _s(cold["at"])), _done(join, _spread(join["known_by"], _ms)),
            _ms(join["joiner_knows_all"]), _done(crash, _spread(crash["known_by"], _s)),
            str(r["false_deaths"]), str(r["false_suspicions"]), f"{r['sim_seconds']:.1f}",
            f"{r['wall']['total']:.0f}",
        ])  # fmt: skip
    return _table(header, rows)


def bandwidth(results: list[dict[str, Any]]) -> str:
    """Steady state: bytes each node sends a second, by kind."""
    header = ["N", *KINDS, "total B/s", "kbit/s", "frames/s", "busiest node B/s",
              "CPU ms/s per node"]  # fmt: skip
    rows = []
    for r in results:
        s = r["steady"]
        rows.append([
            _label(r), *(f"{s[kind]:,.0f}" for kind in KINDS), f"{s['total']:,.0f}",
            f"{s['total'] * 8 / 1e3:,.0f}", f"{s['frames']:,.0f}", f"{s['max_node']:,.0f}",
            _cpu(r),
        ])  # fmt: skip
    return _table(header, rows)


def _cpu(result: dict[str, Any]) -> str:
    cpu = f"{result['steady']['cpu_ms_per_node_s']:.1f}"
    return f"{cpu} (profiled)" if result.get("profiled") else cpu


def costs(results: list[dict[str, Any]]) -> str:
    """Memory, the ring's cost per membership change, and the traffic of a join."""
    header = [
        "N", "core memory per node (KB, ring excluded)", "real ring (KB)", "ring change (ms)",
        "+ old ring in handoffs, history held (ms)",
        "view digest per change of the peers alive (µs)", "topics moved by a join",
        "cold start sent per node (KB)", "join sent per node (KB)", "of which peer lists (KB)",
        "join sent by the new node (KB)",
    ]  # fmt: skip
    rows = []
    for r in results:
        ring, join, n = r["ring"], r["join"], r["options"]["nodes"]
        kb = [
            r["memory"]["core_bytes"], ring["ring_bytes"], r["cold_start"]["bytes_per_node"],
            join["bytes_per_node"], join["peers_bytes_per_node"],
            join.get("joiner_bytes", float("nan")),
        ]  # fmt: skip
        rows.append([
            _label(r), f"{kb[0] / 1e3:,.0f}", f"{kb[1] / 1e3:,.0f}", f"{ring['rebuild_ms']:.1f}",
            f"{ring['old_ring_ms']:.1f}", f"{ring['digest_us']:.0f}",
            f"{ring['moved']:.2%} (1/N = {1 / n:.2%})", *(f"{v / 1e3:,.1f}" for v in kb[2:]),
        ])  # fmt: skip
    return _table(header, rows)


def faults(results: list[dict[str, Any]]) -> str:
    """The 2-way split and its heal, and the rolling restart."""
    header = [
        "N", "split: other side dropped, p50 / p99 / max (s)",
        "sent during the split (B/s per node)",
        "heal: all know all again, p50 / p99 / max (s)", "heal sent per node (KB)",
        "restarts", "restarted node known up by all, p50 / p99 / max (ms)",
        "restarted node knows all, p50 / p99 / max (ms)", "sent per restart per node (KB)",
    ]  # fmt: skip
    rows = []
    for r in results:
        split, restart = r.get("split"), r["restart"]
        rows.append([
            _label(r),
            *([_done(split, _spread(split["split"], _s)), f"{split['split_bytes_per_node_s']:,.0f}",
               _done(split, _spread(split["healed"], _s)),
               f"{split['heal_bytes_per_node'] / 1e3:,.1f}"] if split else ["not played"] * 4),
            str(restart["restarts"]),
            _done(restart, _spread(restart["known_by"], _ms)), _spread(restart["knows_all"], _ms),
            f"{restart['bytes_per_node_per_restart'] / 1e3:,.1f}",
        ])  # fmt: skip
    return _table(header, rows)


def markdown(results: list[dict[str, Any]]) -> str:
    tables = [convergence(results), bandwidth(results), costs(results), faults(results)]
    return "\n\n".join(tables) + "\n"
