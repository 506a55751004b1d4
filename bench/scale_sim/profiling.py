"""Where a run's time goes: cProfile's self time summed by area (cores, wire, simulator).

The self time of C functions (msgpack, hashlib, sorting, min ...) is charged to the
area of the Python functions that called them, in proportion to what each caller spent
there, so that "cores" means everything the node cores cost.
"""

from __future__ import annotations

import cProfile
import pstats
from collections import Counter
from typing import Any

AREAS = (  # the first whose fragment is in a function's file names its area
    ("/zdps/core/", "cores"),
    ("/zdps/wire/", "wire codec"),
    ("/tests/core/", "simulator"),
    ("/bench/scale_sim/", "measuring"),
    ("heapq", "simulator"),
)


def area(filename: str) -> str:
    return next((name for fragment, name in AREAS if fragment in filename), "other")


def summary(profile: cProfile.Profile, top: int = 15) -> dict[str, Any]:
    """Seconds by area, and the ``top`` functions by self time (builtins included)."""
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    by_area: Counter[str] = Counter()
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, callers) in stats.items():
        if filename != "~":
            by_area[area(filename)] += tottime
            continue
        spent = sum(caller[2] for caller in callers.values()) or 1.0
        for (caller_file, _l, _n), caller in callers.items():
            by_area[area(caller_file)] += tottime * caller[2] / spent
    functions = sorted(stats.items(), key=lambda item: -item[1][2])[:top]
    return {
        "total": sum(by_area.values()),
        "areas": dict(by_area.most_common()),
        "top": [
            {"function": _where(key), "calls": value[1], "self_s": value[2], "cum_s": value[3]}
            for key, value in functions
        ],
    }


def _where(key: tuple[str, int, str]) -> str:
    filename, line, name = key
    if filename == "~":
        return name
    short = filename.rsplit("/", 1)[-1]
    for root in ("zdps/", "tests/", "bench/"):
        if f"/{root}" in filename:
            short = root + filename.rsplit(f"/{root}", 1)[1]
            break
    return f"{short}:{line}({name})"


def text(summary: dict[str, Any]) -> str:
    total = summary["total"] or 1.0
    lines = [f"profile: {total:.1f} s of self time"]
    lines += [f"  {name:<12} {s:7.1f} s  {s / total:6.1%}" for name, s in summary["areas"].items()]
    lines.append("  top functions by self time:")
    lines += [
        f"    {f['self_s']:7.2f} s  {f['calls']:>10,}  {f['function']}" for f in summary["top"]
    ]
    return "\n".join(lines)
