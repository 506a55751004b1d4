"""N real node cores on the simulated network and clock, and the scale scenarios.

The cores are ``zdps.core.node.NodeCore``s in ``SimNet`` (tests/core/node_net.py),
which carries their outboxes out as the daemon does; at scale it runs with heaps
(``fast``), records nothing (``record`` off, ``on_log``/``on_frames`` hooks instead),
draws each frame's latency from a distribution (``latency`` + exponential ``jitter``)
and can lose frames (``loss``: TCP sends them again an RTO later, ``drop``: gone).
Unless ``exact``, the cores share their rings and view digests (shared.py), except in
the measured steady state, whose CPU time is the cores' own.

One ``run`` plays, on one cluster, in order:

1. cold start: N nodes start at random times within ``stagger`` seconds, each joining
   through the ``seeds`` first nodes, until every node holds every other alive;
2. steady state: ``warmup`` seconds, then ``steady`` seconds whose traffic is measured;
3. one join: a new node through the seeds, until it and every node know each other;
4. one crash (SIGKILL: the core is gone, frames to and from it are lost) of a random
   node that is neither a seed nor the new one, ``warmup`` seconds after the join,
   until every live node has declared it dead;
5. a 2-way split into random halves, until each node dropped the other side, then the
   heal, until every node holds every other again;
6. a rolling restart of ``restarts`` nodes (no seed), one after the other: each leaves
   (bye), starts again 0.1 s later with a new incarnation, and is known up everywhere
   before the next.

With ``loss`` or ``drop`` every phase runs under it. Deaths of nodes that were
running are counted throughout (false deaths).
"""

from __future__ import annotations

import contextlib
import cProfile
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from tests.core.node_net import SimNet

from .observe import Knowledge, Meter, deep_size, spread
from .shared import exact_digests, ring_cost, sharing

STEP = 0.05  # simulated seconds between two checks of a phase's end


@dataclass
class Options:
    """One scale run; times in seconds."""

    nodes: int
    seeds: int = 3
    latency: float = 0.0005  # one way, the least a frame takes
    jitter: float = 0.0005  # mean of the exponential extra delay of each frame
    loss: float = 0.0  # probability a frame is lost once (TCP sends it again)
    drop: float = 0.0  # probability a frame never arrives
    stagger: float = 1.0
    warmup: float = 1.0
    steady: float = 2.0
    timeout: float = 30.0  # the longest a phase may take, simulated
    restarts: int = 10  # nodes restarted in turn in the rolling restart
    split: bool = True  # play the split and heal (at 1,000 nodes it takes the most time)
    seed: int = 1
    exact: bool = False  # every core computes everything itself (shared.py)


def node_name(i: int) -> str:
    return f"n{i:04d}"


class World:
    """One simulated cluster and what is measured on it."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.rng = random.Random(options.seed)
        self.meter = Meter()
        self.net = net = SimNet(
            latency=options.latency,
            jitter=options.jitter,
            loss=options.loss,
            drop=options.drop,
            rng=random.Random(options.seed + 1),
            fast=True,
            record=False,
            on_frames=self.meter,
        )
        self.knowledge = net.on_log = Knowledge(running=self.running)
        self.seeds = [node_name(i) for i in range(min(options.seeds, options.nodes))]
        self.wall: dict[str, float] = {}

    def running(self, node: str) -> bool:
        sim = self.net.nodes.get(node)
        return sim is not None and sim.core is not None

    def live(self) -> list[str]:
        return [n for n, sim in self.net.nodes.items() if sim.core is not None]

    def advance(self, seconds: float) -> None:
        self.net.advance(seconds, max_events=1 << 62)

    def wait(self, done: Callable[[], bool]) -> bool:
        """Advance until ``done()`` (checked every STEP) or the phase's timeout."""
        deadline = self.net.clock + self.options.timeout
        while not done():
            if self.net.clock >= deadline:
                return False
            self.advance(STEP)
        return True

    def start(self, node: str) -> None:
        self.net.add(node, [seed for seed in self.seeds if seed != node])

    # ------------------------------------------------------------------ phases

    def cold_start(self) -> dict[str, Any]:
        n, knowledge = self.options.nodes, self.knowledge
        names = [node_name(i) for i in range(n)]
        self.rng.shuffle(names)
        starts = sorted(self.rng.uniform(0, self.options.stagger) for _ in names)
        started: dict[str, float] = {}
        knowledge.expect(n - 1)
        self.meter.reset()
        for at, node in zip(starts, names, strict=True):
            self.advance(at - self.net.clock)
            self.start(node)
            started[node] = self.net.clock
        converged = self.wait(lambda: len(knowledge.full_at) == n)
        full = knowledge.full_at
        last = max(full.values(), default=float("nan"))
        return {
            "converged": converged,
            "at": last - starts[0],  # every node knows every other, since the first start
            "after_last_start": last - starts[-1],
            "per_node": spread(full[node] - started[node] for node in full),
            "bytes_per_node": sum(self.meter.bytes.values()) / n,
        }

    def steady_state(self) -> dict[str, Any]:
        """Bytes a second by kind, and the CPU time it took (cores and simulator)."""
        self.advance(self.options.warmup)
        self.meter.reset()
        with exact_digests():
            cpu = time.process_time()
            self.advance(self.options.steady)
            cpu = time.process_time() - cpu
        nodes = len(self.live())
        rates = self.meter.rates(self.options.steady, nodes)
        rates["cpu_ms_per_node_s"] = cpu * 1e3 / (self.options.steady * nodes)
        return rates

    def join(self) -> dict[str, Any]:
        knowledge, joiner = self.knowledge, node_name(self.options.nodes)
        before = self.live()
        knowledge.up[joiner] = {}
        knowledge.expect(len(before))
        self.meter.reset()
        t0 = self.net.clock
        self.start(joiner)
        converged = self.wait(lambda: len(knowledge.full_at) == len(before) + 1)
        known = knowledge.up[joiner]
        return {
            "converged": converged,
            "known_by": spread((known[n] for n in before if n in known), t0),
            "missing": len([n for n in before if n not in known]),
            "joiner_knows_all": knowledge.full_at.get(joiner, float("nan")) - t0,
            "bytes_per_node": sum(self.meter.bytes.values()) / (len(before) + 1),
            "peers_bytes_per_node": self.meter.bytes["peers"] / (len(before) + 1),
            "joiner_bytes": self.meter.by_node[joiner],  # its hellos carry the peer list
        }

    def crash(self) -> dict[str, Any]:
        self.advance(self.options.warmup)
        knowledge = self.knowledge
        joiner = node_name(self.options.nodes)
        victim = self.rng.choice(sorted(set(self.live()) - {*self.seeds, joiner}))
        knowledge.down[victim] = {}
        knowledge.why.clear()
        t0 = self.net.clock
        self.net.crash(victim)
        live = self.live()
        known = knowledge.down[victim]
        converged = self.wait(lambda: all(n in known for n in live))
        return {
            "converged": converged,
            "known_by": spread((known[n] for n in live if n in known), t0),
            "missing": len([n for n in live if n not in known]),
            "why": dict(knowledge.why),
        }

    def split_heal(self) -> dict[str, Any]:
        """Random halves cut apart until each node holds only its own side, then healed
        until each holds all again; when each node got there, and the bytes sent."""
        self.advance(self.options.warmup)
        live, knowledge, net = self.live(), self.knowledge, self.net
        self.rng.shuffle(live)
        sides = [set(live[: len(live) // 2]), set(live[len(live) // 2 :])]
        side = {node: i for i, part in enumerate(sides) for node in part}
        knowledge.apart = lambda a, b: side.get(a, -1) != side.get(b, -2)
        self.meter.reset()
        t0 = net.clock
        net.split(*sides)
        split = self._until(lambda node: knowledge.alive[node] == len(sides[side[node]]) - 1)
        t1 = net.clock
        split_rates = self.meter.rates(t1 - t0, len(live))
        self.meter.reset()
        net.heal()
        knowledge.apart = lambda a, b: False
        healed = self._until(lambda node: knowledge.alive[node] == len(live) - 1)
        return {
            "converged": len(split) == len(healed) == len(live),
            "split": spread(split.values(), t0),
            "split_bytes_per_node_s": split_rates["total"],
            "split_rates": split_rates,  # by kind, per node and second
            "healed": spread(healed.values(), t1),
            "heal_bytes_per_node": sum(self.meter.bytes.values()) / len(live),
        }

    def _until(self, done: Callable[[str], bool]) -> dict[str, float]:
        """When each live node first met ``done`` (checked every STEP), until all did or
        the phase's timeout."""
        at: dict[str, float] = {}
        live = self.live()

        def check() -> bool:
            at.update((n, self.net.clock) for n in live if n not in at and done(n))
            return len(at) == len(live)

        self.wait(check)
        return at

    def rolling_restart(self) -> dict[str, Any]:
        """Nodes restarted one after the other: when each was known up by every node."""
        knowledge, net = self.knowledge, self.net
        candidates = sorted(set(self.live()) - set(self.seeds))
        chosen = self.rng.sample(candidates, min(self.options.restarts, len(candidates)))
        self.meter.reset()
        known_by, knows_all, converged, started = [], [], True, net.clock
        for node in chosen:
            net.leave(node)
            self.advance(0.1)  # the process restarts
            live = self.live()
            knowledge.up[node], knowledge.alive[node] = {}, 0
            knowledge.expect(len(live))  # the restarted node's peers
            t0 = net.clock
            net.restart(node)
            known = knowledge.up[node]
            converged &= self.wait(lambda: len(known) == len(live) and node in knowledge.full_at)  # noqa: B023
            known_by += [at - t0 for at in known.values()]
            knows_all.append(knowledge.full_at.get(node, float("nan")) - t0)
        return {
            "converged": converged,
            "restarts": len(chosen),
            "known_by": spread(known_by),
            "knows_all": spread(knows_all),
            "bytes_per_node_per_restart": sum(self.meter.bytes.values())
            / (len(self.live()) * max(1, len(chosen))),
            "seconds": net.clock - started,
        }

    def memory(self) -> dict[str, Any]:
        """Bytes of one node's core (its ring excluded unless ``real_ring``)."""
        core = self.net.core(self.live()[-1])
        size = deep_size(core)
        return {"core_bytes": size, "per_peer": size / max(1, len(self.live()) - 1)}


def run(options: Options, profile: cProfile.Profile | None = None) -> dict[str, Any]:
    """Every phase on one cluster of ``options.nodes``; the figures and wall times.
    ``profile``, if given, runs during the phases (not the ring's measurement)."""
    if options.nodes < options.seeds + 2:
        raise ValueError(f"{options.nodes} nodes: the crash needs one that is not a seed")
    result: dict[str, Any] = {"options": asdict(options), "profiled": profile is not None}
    with contextlib.nullcontext() if options.exact else sharing():
        world = World(options)
        if profile is not None:
            profile.enable()
        for phase, method in (
            ("cold_start", world.cold_start),
            ("steady", world.steady_state),
            ("join", world.join),
            ("crash", world.crash),
            *([("split", world.split_heal)] if options.split else []),
            ("restart", world.rolling_restart),
            ("memory", world.memory),
        ):
            started = time.perf_counter()
            result[phase] = method()
            world.wall[phase] = time.perf_counter() - started
        if profile is not None:
            profile.disable()
    knowledge, net = world.knowledge, world.net
    result["false_deaths"] = len(knowledge.false_deaths)
    result["false_death_list"] = knowledge.false_deaths[:20]
    result["suspicions"] = knowledge.suspicions
    result["false_suspicions"] = knowledge.false_suspicions
    result["dropped"] = net.dropped
    result["retransmitted"] = net.retransmitted
    result["frames"] = net._order
    result["sim_seconds"] = net.clock
    result["wall"] = dict(world.wall, total=sum(world.wall.values()))
    result["ring"] = ring_cost(options.nodes)
    return result
