"""Seeded fault schedules over a real network stack with a work-queue workload.

The schedules, the mesh and the publisher are test_schedules.py's (workload.py); the
readers here are the members of one durable consumer (docs/PROTOCOL.md §8.6) on each
topic, created before the faults with ``start all``: one member per host, processing
each message and acking it. A member whose node is killed dies with it, and a new one
starts on the restarted node. After the heal the promise of docs/FAILURES.md "Durable
consumers" is checked: every message acknowledged at ``replicated`` level is processed
by some member, a message processed twice is flagged as a redelivery, and the
consumer's state (``consumer info``) is the same from every node, nothing left pending.

ZDPS_CHAOS=quick (the default, for CI) runs 3 schedules, ZDPS_CHAOS=long 20; see
workload.py for ZDPS_CHAOS_SCHEDULES and ZDPS_CHAOS_SEED.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import pytest

from tests.chaos import faults
from tests.chaos.faults import Fault
from tests.chaos.figures import Figures, WorkFigures
from tests.chaos.netlab import Host, NetLab
from tests.chaos.workload import HOSTS, SETTLE_LIMIT, Publisher, mesh, run_faults, seed_noted, seeds
from tests.cluster.harness import wait_for
from zdps import ZdpsError

TOPICS = ("work.a", "work.d")  # owned by h2 and h1 while all four are up
NAME = "workers"
ACK_WAIT = 2.0  # short, so that what a dead or cut-off member held goes again soon
MAX_DELIVER = 100  # a message is due again every ACK_WAIT s: chaos alone never gets here
POLL = 0.02  # seconds a member waits on one topic before it looks at the other
JOIN_TIMEOUT = 5.0

Views = dict[str, dict[str, Any]]  # host -> topic -> its consumer info, or an error


@dataclass(frozen=True)
class Copy:
    """One delivery a member processed: when (this process's clock), where, what."""

    at: float
    host: str
    topic: str
    epoch: int
    seq: int
    deliveries: int
    data: str


@dataclass
class Member:
    """A member of the consumer of every topic through ``host``'s node: a thread of this
    process whose client connects from inside the host's namespace (a thread, not a
    ``zdps consume`` process, so that it costs the two cores next to nothing)."""

    host: Host
    copies: list[Copy] = field(default_factory=list)
    error: BaseException | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Member:
        self._thread = threading.Thread(target=self.run, name=f"member-{self.host.name}")
        self._thread.start()
        return self

    def run(self) -> None:
        try:
            with self.host.client(timeout=JOIN_TIMEOUT) as client:
                members = [client.consume(topic, NAME) for topic in TOPICS]
                try:
                    while not self._stop.is_set():
                        for member in members:
                            self.process(member, member.recv_batch(POLL))
                finally:
                    for member in members:
                        member.close()
        except BaseException as exc:
            self.error = exc

    def process(self, member: Any, messages: list[Any] | None) -> None:
        """Processing is writing it down; then the whole batch is acked in one frame."""
        if not messages:
            return
        now = time.monotonic()
        self.copies += [
            Copy(now, self.host.name, m.topic, m.epoch, m.seq, m.deliveries, m.data.decode())
            for m in messages
        ]
        member.verdicts(messages)

    def end(self) -> None:
        """Stop at once: what it holds without having processed it is never acked."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT + 10)


def check(
    publisher: Publisher, copies: list[Copy], figures: WorkFigures
) -> tuple[list[str], dict[str, Any]]:
    """The work-queue invariants; returns the violations and this schedule's figures.

    A duplicate is unflagged when a message has more than one copy with deliveries 1:
    the owner counts every delivery after the first. Which copy was processed first
    says nothing: a first delivery held by a frozen node may be processed after its
    flagged redelivery elsewhere.
    """
    problems: list[str] = []
    by_id: dict[str, list[Copy]] = defaultdict(list)
    where: dict[tuple[str, int, int], str] = {}  # (topic, epoch, seq) -> id
    for copy in sorted(copies, key=lambda c: c.at):
        by_id[copy.data].append(copy)
        key = (copy.topic, copy.epoch, copy.seq)
        if where.setdefault(key, copy.data) != copy.data:
            problems.append(f"{key} is {where[key]!r} at one member, {copy.data!r} at {copy.host}")
    unprocessed = sorted(set(publisher.acked) - set(by_id))
    if unprocessed:
        problems.append(
            f"{len(unprocessed)} acknowledged message(s) processed by no member: {unprocessed[:5]}"
        )
    unflagged = []
    for seen in by_id.values():
        firsts = [c for c in seen if c.deliveries == 1]
        unflagged += [(firsts[0], c) for c in firsts[1:]]
    if unflagged:
        told = [
            f"{b.data} at {a.host} ({a.topic} {a.epoch}/{a.seq}) and {b.at - a.at:.2f} s later"
            f" at {b.host} ({b.topic} {b.epoch}/{b.seq})"
            for a, b in unflagged[:5]
        ]
        problems.append(f"{len(unflagged)} unflagged duplicate(s): " + "; ".join(told))
    this = {
        "published": len(publisher.acked) + len(publisher.failed),
        "acked": len(publisher.acked),
        "processed": len(by_id),
        "unprocessed": len(unprocessed),
        "redelivered": sum(c.deliveries > 1 for c in copies),
        "unflagged": len(unflagged),
    }
    for name, value in this.items():
        setattr(figures, name, getattr(figures, name) + value)
    return problems, this


def consumer_views(lab: NetLab) -> Views:
    """Every host's answer to ``consumer info`` on each topic (an error as its code)."""
    views: Views = {}
    for host in lab.hosts:
        views[host.name] = {}
        with host.client() as client:
            for topic in TOPICS:
                try:
                    info = client.request("consumer_info", topic=topic, name=NAME)
                except ZdpsError as exc:
                    info = f"error {exc.code}"
                views[host.name][topic] = info
    return views


def state_problems(views: Views) -> list[str]:
    """The consumer once the work is done: the same from every node (the owner answers
    for all), nothing pending, lost or dead-lettered, and a member on every host."""
    problems = []
    (first_host, first), *others = views.items()
    for host, view in others:
        if view != first:
            problems.append(f"consumer info differs: {first_host} {first}, {host} {view}")
    for topic, info in first.items():
        if not isinstance(info, dict):
            problems.append(f"{topic}: consumer info is {info} at {first_host}")
            continue
        dead = info["counts"].get("dead_lettered", 0)
        if info["pending"] or info["lost"] or dead:
            problems.append(
                f"{topic}: pending {info['pending']}, lost {info['lost']}, dead-lettered {dead}"
            )
        if sum(info["members"].values()) != HOSTS:
            problems.append(f"{topic}: members {info['members']}, not one on each of {HOSTS}")
    return problems


def start_members(lab: NetLab) -> dict[str, Member]:
    """The consumers, created before the faults, and a member on every host, all known
    to the owner before the publisher starts."""
    with lab.hosts[0].client(timeout=10) as client:
        for topic in TOPICS:
            client.create_consumer(
                topic, NAME, start="all", ack_wait=ACK_WAIT, max_deliver=MAX_DELIVER
            )
    members = {host.name: Member(host).start() for host in lab.hosts}

    def joined() -> bool:
        views = consumer_views(lab)[lab.hosts[0].name].values()
        return all(isinstance(i, dict) and sum(i["members"].values()) == HOSTS for i in views)

    wait_for(joined, 15, "a member on every host")
    return members


@pytest.mark.timeout(240)
@pytest.mark.parametrize("seed", seeds(quick=3, long=20))
def test_work_queue_keeps_its_promise(
    seed: int, kinds: tuple[str, ...], lab: NetLab, chaos_figures: Figures
) -> None:
    """The promise of durable consumers through the schedule of ``seed`` (``kinds``
    before ``lab``: a machine without namespaces still gets its summary line)."""
    with seed_noted(seed, chaos_figures.failed, chaos_figures.work.failed):
        run_one(seed, lab, kinds, chaos_figures)


def run_one(seed: int, lab: NetLab, kinds: tuple[str, ...], figures: Figures) -> None:
    mesh(lab, seed, figures)
    members = start_members(lab)
    everyone = list(members.values())

    def on_fault(fault: Fault, injected: bool) -> None:
        """A member dies with its node, and a new one starts with the node restarted."""
        if fault.kind != faults.KILL:
            return
        (name,) = fault.hosts
        if injected:
            members.pop(name).end()
            figures.work.members_killed += 1
        else:
            members[name] = Member(lab.host(name)).start()
            everyone.append(members[name])

    figures.work.schedules += 1
    try:
        publisher, told, took = run_faults(seed, lab, kinds, figures, TOPICS, on_fault)
        problems = publisher.after_heal(figures)

        def done() -> bool:
            processed = {c.data for m in everyone for c in list(m.copies)}
            return set(publisher.acked) <= processed and not state_problems(consumer_views(lab))

        with contextlib.suppress(AssertionError):  # what is wrong, the checks below tell
            wait_for(done, SETTLE_LIMIT, "every acknowledged message processed, none pending")
        problems += state_problems(consumer_views(lab))
    finally:
        for member in members.values():
            member.end()
    problems += [f"the member on {m.host.name} failed: {m.error!r}" for m in everyone if m.error]
    copies = [c for m in everyone for c in m.copies]
    ledger = {"schedule": told, "acked": publisher.acked, "failed": publisher.failed}
    (lab.workdir / "publisher.json").write_text(json.dumps(ledger, indent=1))  # post-mortems
    (lab.workdir / "copies.json").write_text(json.dumps([asdict(c) for c in copies], indent=0))
    found, this = check(publisher, copies, figures.work)
    problems += found
    print(f"seed {seed}: converged in {took:.2f} s; {this}")
    assert not problems, f"{told} (logs in {lab.workdir})\n" + "\n".join(problems)


# The checks themselves, without a network: each invariant catches what it is for.


def copy(data: str, seq: int, deliveries: int = 1, at: float = 0.0, host: str = "h1") -> Copy:
    return Copy(at, host, "work.a", 1, seq, deliveries, data)


@pytest.mark.timeout(10)
def test_check_catches_loss_unflagged_duplicates_and_conflicting_seqs() -> None:
    publisher = Publisher(None, "s", 0, TOPICS, acked={"s-0": 1, "s-1": 2}, failed={"s-2": "x"})
    # s-1 goes again, flagged, and its first delivery is processed after that (held by
    # a frozen node): allowed. s-2 was never acknowledged: it need not come.
    good = [copy("s-0", 1), copy("s-1", 2, 2, at=1.0, host="h2"), copy("s-1", 2, 1, at=2.0)]
    figures = WorkFigures()
    assert check(publisher, good, figures)[0] == []
    assert (figures.acked, figures.processed, figures.redelivered) == (2, 2, 1)
    lost = good[:1]
    twice = [*good, copy("s-0", 1, at=3.0, host="h3")]
    clash = [*good, copy("s-2", 1, at=4.0, host="h4")]
    for copies, problem, counted in [
        (lost, "1 acknowledged message(s) processed by no member: ['s-1']", (1, 0)),
        (twice, "1 unflagged duplicate(s): s-0 at h1 (work.a 1/1) and 3.00 s later at h3", (0, 1)),
        (clash, "('work.a', 1, 1) is 's-0' at one member, 's-2' at h4", (0, 0)),
    ]:
        figures = WorkFigures()
        found = check(publisher, copies, figures)[0]
        assert len(found) == 1 and found[0].startswith(problem), found
        assert (figures.unprocessed, figures.unflagged) == counted


@pytest.mark.timeout(10)
def test_state_problems_catch_disagreement_pending_and_missing_members() -> None:
    info = {"pending": 0, "lost": 0, "counts": {"acked": 5}, "members": {"h1": 1, "h2": 3}}
    views = {f"h{i}": {"work.a": info} for i in range(1, 5)}
    assert state_problems(views) == []
    views["h3"] = {"work.a": "error no_consumer"}
    views["h1"] = {"work.a": {**info, "pending": 2, "counts": {"dead_lettered": 1}}}
    views["h1"]["work.a"]["members"] = {"h1": 1}
    found = state_problems(views)
    assert len(found) == 5, found
    assert [p.split(":")[0] for p in found] == ["consumer info differs"] * 3 + ["work.a"] * 2
    assert found[3] == "work.a: pending 2, lost 0, dead-lettered 1"
    assert found[4] == "work.a: members {'h1': 1}, not one on each of 4"


@pytest.mark.timeout(10)
def test_the_summary_line_carries_both_workloads() -> None:
    figures = Figures(mode="quick", schedules=2)
    assert "work queue" not in figures.line()
    figures.work = WorkFigures(schedules=1, acked=9, processed=9, redelivered=2)
    line = figures.line()
    assert line.startswith("chaos summary: mode quick, schedules 2 ") and "acked-but-lost" in line
    assert (
        "work queue: schedules 1 (failed seeds: none), published 0 / acked 9 / processed 9" in line
    )
    assert "acked-but-unprocessed 0, redelivered 2, unflagged duplicates 0" in line
