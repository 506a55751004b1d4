"""Seeded fault schedules over a real network stack, with invariants checked after each.

Four nodes, each on its own namespaced host. One publisher (a thread of this process,
its client inside one host's namespace) publishes at a steady rate at ``replicated``
ack level; one ``zdps subscribe --json`` per host records what arrives. Meanwhile a
seeded schedule kills, freezes, cuts off, partitions and degrades hosts (schedules of
even seeds with CURVE between the nodes, docs/PROTOCOL.md §2.1). Then every
fault is healed and the invariants are checked (see ``check``). Figures add up into
the one "chaos summary:" line printed at the end of the run. The mesh, the publisher and
the faults are shared with test_work_queue.py (workload.py, which says how ZDPS_CHAOS,
ZDPS_CHAOS_SCHEDULES and ZDPS_CHAOS_SEED choose the schedules): 10 schedules of 12 s
quick (the default, for CI), 50 of 20 s long.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.chaos import faults
from tests.chaos.faults import KINDS
from tests.chaos.figures import Figures
from tests.chaos.netlab import NetLab
from tests.chaos.schedules import make_schedule
from tests.chaos.workload import ACK, SETTLE_LIMIT, Publisher, mesh, run_faults, seed_noted, seeds
from tests.cluster.harness import wait_for
from zdps import ZdpsError

TOPICS = ("chaos.a", "chaos.b", "chaos.c")


@dataclass
class Received:
    """What one subscriber printed: messages and unrecoverable gaps."""

    host: str
    messages: list[dict[str, Any]]
    gaps: list[dict[str, Any]]

    @classmethod
    def read(cls, host: str, path: Path) -> Received:
        messages, gaps = [], []
        for line in path.read_text(errors="replace").splitlines():
            try:
                obj = json.loads(line)
            except ValueError:  # the line being written right now
                continue
            (gaps if "gap" in obj else messages).append(obj.get("gap", obj))
        return cls(host, messages, gaps)

    @property
    def ids(self) -> set[str]:
        return {m["data"] for m in self.messages}


def check(
    publisher: Publisher, received: list[Received], figures: Figures
) -> tuple[list[str], dict[str, Any]]:
    """The delivery invariants; returns the violations and this schedule's figures."""
    problems: list[str] = []
    where: dict[tuple[str, int, int], str] = {}  # (topic, epoch, seq) -> id, across subscribers
    redelivered = 0
    for sub in received:
        seen: Counter = Counter((m["topic"], m["epoch"], m["seq"]) for m in sub.messages)
        copies: Counter = Counter((m["topic"], m["epoch"], m["data"]) for m in sub.messages)
        dups = [key for key, n in seen.items() if n > 1] + [k for k, n in copies.items() if n > 1]
        if dups:
            problems.append(f"{sub.host}: duplicates within an epoch: {dups[:5]}")
        redelivered += len(sub.messages) - len(sub.ids)
        for m in sub.messages:
            key = (m["topic"], m["epoch"], m["seq"])
            if where.setdefault(key, m["data"]) != m["data"]:
                problems.append(
                    f"{key} is {where[key]!r} at one subscriber, {m['data']!r} at {sub.host}"
                )
        missing = sorted(set(publisher.acked) - sub.ids)
        if missing and ACK == "replicated":
            problems.append(
                f"{sub.host}: {len(missing)} acknowledged message(s) lost: {missing[:5]}"
            )
    delivered = set().union(*(sub.ids for sub in received)) if received else set()
    acked_lost = {i for sub in received for i in set(publisher.acked) - sub.ids}
    this = {
        "published": len(publisher.acked) + len(publisher.failed),
        "acked": len(publisher.acked),
        "delivered": len(delivered),
        "acked_lost": len(acked_lost),
        "unacked_lost": len(set(publisher.failed) - delivered),
        "gaps": sum(len(sub.gaps) for sub in received),
        "redelivered": redelivered,
        "failures": dict(Counter(publisher.failed.values())),
    }
    for name in ("published", "acked", "delivered", "acked_lost", "unacked_lost", "gaps"):
        setattr(figures, name, getattr(figures, name) + this[name])
    figures.redelivered += redelivered
    return problems, this


def topic_views(lab: NetLab) -> list[dict[str, Any]] | None:
    """Every running host's view of every topic, or None if one does not answer."""
    views = []
    for host in lab.hosts:
        try:
            with host.client() as client:
                views.append({topic: client.members(topic) for topic in TOPICS})
        except (ZdpsError, OSError):
            return None
    return views


def start_cluster(
    lab: NetLab, seed: int, figures: Figures
) -> dict[str, tuple[subprocess.Popen, Path]]:
    """Four nodes in a mesh and a subscriber on each: {host: (process, its output)}."""
    hosts = mesh(lab, seed, figures)
    subscribers = {
        host.name: lab.spawn(
            host, ["subscribe", "--json", "--node", host.api, *TOPICS], f"sub-{host.name}"
        )
        for host in hosts
    }
    for name in subscribers:
        err = lab.workdir / f"sub-{name}.err"
        wait_for(lambda err=err: "subscribed" in err.read_text(), 15, f"the subscriber on {name}")
    return subscribers


def settle(lab: NetLab, publisher: Publisher, live: dict[str, Path], figures: Figures) -> list[str]:
    """After the heal: topic membership agrees, the cluster serves, subscribers catch up."""
    problems = []

    def membership_agrees() -> bool:
        views = topic_views(lab)
        return (
            bool(views)
            and all(v == views[0] for v in views)
            and all(sorted(view["nodes"]) == sorted(live) for view in views[0].values())
        )

    try:
        wait_for(membership_agrees, SETTLE_LIMIT, "topic membership to agree")
    except AssertionError:
        problems.append(f"topic membership differs or has ghosts: {topic_views(lab)}")
    problems += publisher.after_heal(figures)

    def caught_up() -> bool:
        return all(set(publisher.acked) <= Received.read(n, p).ids for n, p in live.items())

    with contextlib.suppress(AssertionError):  # what is missing, check() reports
        wait_for(caught_up, SETTLE_LIMIT, "subscribers to receive every acknowledged message")
    return problems


@pytest.mark.timeout(300)
@pytest.mark.parametrize("seed", seeds(quick=10, long=50))
def test_schedule_keeps_the_invariants(
    seed: int, kinds: tuple[str, ...], lab: NetLab, chaos_figures: Figures
) -> None:
    """``kinds`` before ``lab``: a machine without namespaces still gets its summary line."""
    with seed_noted(seed, chaos_figures.failed):
        run_one(seed, lab, kinds, chaos_figures)


def run_one(seed: int, lab: NetLab, kinds: tuple[str, ...], figures: Figures) -> None:
    subscribers = start_cluster(lab, seed, figures)
    publisher, told, took = run_faults(seed, lab, kinds, figures, TOPICS)
    live = {name: path for name, (proc, path) in subscribers.items() if proc.poll() is None}
    problems = settle(lab, publisher, live, figures)
    ledger = {"schedule": told, "acked": publisher.acked, "failed": publisher.failed}
    (lab.workdir / "publisher.json").write_text(json.dumps(ledger, indent=1))  # for post-mortems
    ended = sorted(set(subscribers) - set(live))
    if ended:
        problems.append(f"subscribers ended during the schedule: {ended}")
    found, this = check(publisher, [Received.read(n, p) for n, p in live.items()], figures)
    problems += found
    print(f"seed {seed}: converged in {took:.2f} s; {this}")
    assert not problems, f"{told} (logs in {lab.workdir})\n" + "\n".join(problems)


# The checks themselves, without a network: each invariant catches what it is for.


def test_schedules_are_seeded_bounded_and_within_the_failure_model() -> None:
    hosts = ["h1", "h2", "h3", "h4"]
    schedules = [make_schedule(seed, hosts, 20.0, KINDS, 5) for seed in range(300)]
    assert schedules[7] == make_schedule(7, hosts, 20.0, KINDS, 5)
    assert {len(f.groups) for s in schedules for f in s if f.kind == faults.SPLIT} == {2, 3}
    for seed, schedule in enumerate(schedules):  # so a few seeds in a row cover every kind
        assert KINDS[seed % len(KINDS)] in {f.kind for f in schedule}
    for schedule in schedules:
        assert sum(f.kind == faults.KILL for f in schedule) <= 1
        for i, fault in enumerate(schedule):
            assert fault.at > 0 and fault.end <= 20.0
            assert sorted(fault.hosts) == sorted(h for g in fault.groups for h in g)
            for other in schedule[i + 1 :]:
                assert not (fault.hosts & other.hosts and other.at < fault.end), (fault, other)


def test_check_catches_loss_duplicates_and_conflicting_seqs() -> None:
    publisher = Publisher(
        None, "s", 0, TOPICS, acked={"s-0": 1, "s-1": 2}, failed={"s-2": "timeout"}
    )
    good = [{"topic": "t", "epoch": 1, "seq": 1, "data": "s-0"}]
    good.append({"topic": "t", "epoch": 1, "seq": 2, "data": "s-1"})
    figures = Figures()
    assert check(publisher, [Received("h1", good, [])], figures)[0] == []
    assert (figures.acked_lost, figures.unacked_lost) == (0, 1)
    lost = Received("h2", good[:1], [{"topic": "t", "epoch": 1, "from": 2, "to": 2}])
    twice = Received("h3", [*good, good[1]], [])
    moved = Received("h4", [*good, {**good[1], "epoch": 2, "seq": 1}], [])  # a later epoch
    clash = Received("h5", [good[0], {**good[1], "data": "s-2"}], [])
    problems, this = check(publisher, [lost, twice, moved, clash], Figures())
    assert len(problems) == 4, problems
    assert problems[0].startswith("h2: 1 acknowledged message(s) lost")
    assert problems[1].startswith("h3: duplicates within an epoch")
    assert problems[2] == "('t', 1, 2) is 's-1' at one subscriber, 's-2' at h5"
    assert problems[3].startswith("h5: 1 acknowledged message(s) lost")
    assert (this["acked_lost"], this["gaps"], this["redelivered"]) == (1, 1, 2)
