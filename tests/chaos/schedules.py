"""Seeded random fault schedules, bounded in time: the same seed gives the same schedule.

Rules that keep a schedule inside the failure model the invariants are stated for:
a host suffers one fault at a time (with a gap between two), a split takes the whole
network, and at most one node is killed per schedule (a message acknowledged at
``replicated`` level is on two nodes, so it survives one crash, not two).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

from tests.chaos.faults import KILL, SPLIT, STOP, Fault

GAP = 0.5  # seconds between two faults on one host
MIN_S, MAX_S = 1.0, 5.0  # how long a fault lasts
ATTEMPTS = 200  # candidate faults drawn per schedule before giving up on adding more


def make_schedule(
    seed: int, hosts: Sequence[str], horizon: float, kinds: Sequence[str], faults: int
) -> list[Fault]:
    """Up to ``faults`` faults of ``kinds`` on ``hosts``, all over within ``horizon`` s."""
    rng = random.Random(seed)
    chosen: list[Fault] = []
    for _ in range(ATTEMPTS):
        if len(chosen) == faults:
            break
        # The first fault's kind turns with the seed: any len(kinds) seeds in a row cover all.
        kind = rng.choice(kinds) if chosen else kinds[seed % len(kinds)]
        # Freezes are drawn from 0.3 s up: shorter than the peer timeout is not a death.
        duration = round(rng.uniform(0.3 if kind == STOP else MIN_S, MAX_S), 1)
        at = round(rng.uniform(0.5, horizon - duration), 1)
        if kind == SPLIT:
            shuffled = rng.sample(list(hosts), len(hosts))
            ways = rng.choice([2, 3]) if len(hosts) >= 3 else 2
            cuts = sorted(rng.sample(range(1, len(hosts)), ways - 1))
            bounds = [0, *cuts, len(hosts)]
            groups = tuple(tuple(sorted(shuffled[a:b])) for a, b in itertools.pairwise(bounds))
        else:
            groups = ((rng.choice(list(hosts)),),)
        fault = Fault(at, kind, groups, duration)
        if kind == KILL and any(f.kind == KILL for f in chosen):
            continue
        if any(_clash(fault, other) for other in chosen):
            continue
        chosen.append(fault)
    return sorted(chosen, key=lambda f: f.at)


def _clash(a: Fault, b: Fault) -> bool:
    """Both touch one host at overlapping times (with the gap)."""
    return bool(a.hosts & b.hosts) and a.at < b.end + GAP and b.at < a.end + GAP
