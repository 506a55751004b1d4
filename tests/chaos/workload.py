"""What every chaos workload shares: the settings, the mesh, the publisher, the faults.

A workload (test_schedules.py: subscribers; test_work_queue.py: a durable consumer)
starts four nodes with ``mesh``, its own readers, then ``run_faults``: a publisher
publishes at ``replicated`` ack level while a seeded schedule injects and reverts its
faults; then everything is healed and the ring must converge. What the readers got is
the workload's own business, checked by its own invariants.

ZDPS_CHAOS=quick (the default, for CI) runs a few short schedules; ZDPS_CHAOS=long
runs more, longer ones; ZDPS_CHAOS_SCHEDULES sets how many each workload runs.
ZDPS_CHAOS_SEED picks the first seed; schedule k uses seed + k, and a failure names
its seed and schedule.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.chaos import faults
from tests.chaos.faults import Fault
from tests.chaos.figures import Figures
from tests.chaos.netlab import Host, NetLab, timed
from tests.chaos.schedules import make_schedule
from zdps import ZdpsError, wire

MODE = os.environ.get("ZDPS_CHAOS", "quick")
LONG = MODE == "long"
FIRST_SEED = int(os.environ.get("ZDPS_CHAOS_SEED", "1"))
HOSTS = 4
HORIZON = 20.0 if LONG else 12.0  # seconds of faults (and publishing) per schedule
FAULTS = 5 if LONG else 3  # at most, per schedule
RATE = 25.0  # publishes per second
PUBLISH_TIMEOUT = 3.0
CONVERGE_LIMIT = 30.0  # after the heal; the slowest one is reported
SETTLE_LIMIT = 30.0  # for readers to catch up and views to agree
AFTER_HEAL = 10  # publishes after convergence, every one of which must be acked

# Whether this zdps has ack levels; without them acks are the owner's (at-most-once).
ACK = "replicated" if "replicated" in getattr(wire, "ACK_LEVELS", {}) else "owner"

OnFault = Callable[[Fault, bool], None]  # after a fault is injected (True) or reverted


def seeds(quick: int, long: int) -> range:
    """The seeds a workload runs: ZDPS_CHAOS_SCHEDULES of them, else its own default."""
    count = int(os.environ.get("ZDPS_CHAOS_SCHEDULES", long if LONG else quick))
    return range(FIRST_SEED, FIRST_SEED + count)


@contextlib.contextmanager
def seed_noted(seed: int, *lists: list[int]) -> Iterator[None]:
    """A schedule that fails puts its seed on ``lists`` (the summary line names them)."""
    try:
        yield
    except BaseException:
        for failed in lists:
            failed.append(seed)
        raise


@dataclass
class Publisher:
    """Publishes unique ids to ``topics`` in turn, at a steady rate through ``host``
    until ``until``."""

    host: Host
    prefix: str
    until: float
    topics: tuple[str, ...]
    acked: dict[str, int] = field(default_factory=dict)  # id -> seq
    failed: dict[str, str] = field(default_factory=dict)  # id -> error code
    error: BaseException | None = None  # what stopped the thread, if not its deadline

    def run(self) -> None:
        try:
            with self.host.client(timeout=PUBLISH_TIMEOUT) as client:
                index, next_at = 0, time.monotonic()
                while next_at < self.until:
                    time.sleep(max(0.0, next_at - time.monotonic()))  # the steady rate
                    topic = self.topics[index % len(self.topics)]
                    self.publish(client, f"{self.prefix}-{index}", topic)
                    index += 1
                    next_at = max(next_at + 1 / RATE, time.monotonic())  # no bursts after a stall
        except BaseException as exc:
            self.error = exc

    def publish(self, client: Any, ident: str, topic: str) -> None:
        try:
            if ACK == "replicated":
                result = client.publish(topic, ident, ack="replicated")
            else:
                result = client.publish(topic, ident)
            self.acked[ident] = result.seq
        except ZdpsError as exc:  # refused, or uncertain: counted, never retried
            self.failed[ident] = exc.code

    def after_heal(self, figures: Figures) -> list[str]:
        """The cluster serves again: each of AFTER_HEAL publishes is acknowledged, if need
        be on a retry (a new id: the failed try counts as unacknowledged), within a
        deadline. They join this publisher's ledger."""
        problems = []
        after = Publisher(self.host, f"{self.prefix}-after", 0, self.topics)
        started = time.monotonic()
        with self.host.client(timeout=PUBLISH_TIMEOUT) as client:
            for index in range(AFTER_HEAL):
                tries = 0
                while time.monotonic() < started + SETTLE_LIMIT:
                    ident = f"{after.prefix}-{index}-{tries}"
                    after.publish(client, ident, self.topics[index % len(self.topics)])
                    if ident in after.acked:
                        break
                    tries += 1
                else:
                    problems.append(f"publishes after the heal not acknowledged: {after.failed}")
                    break
        if after.failed:
            stalled = time.monotonic() - started
            figures.stalled = max(figures.stalled, stalled)
            print(f"after the heal: publishes retried for {stalled:.1f} s: {after.failed}")
        self.acked.update(after.acked)
        self.failed.update(after.failed)
        return problems


def mesh(lab: NetLab, seed: int, figures: Figures) -> list[Host]:
    """Four nodes in a mesh; schedules of even seeds with CURVE between them."""
    lab.curve = seed % 2 == 0
    figures.curve += lab.curve
    hosts = [lab.add_host() for _ in range(HOSTS)]
    lab.start(hosts[0])
    for host in hosts[1:]:
        lab.start(host, seeds=[hosts[0]])
    timed(lab.converged, 20, "the hosts to form a mesh")
    return hosts


def run_schedule(
    lab: NetLab, schedule: list[Fault], t0: float, figures: Figures, on_fault: OnFault | None
) -> None:
    """Inject and revert each fault at its time (the waits are the faults' durations)."""
    events = [(f.at, 1, faults.inject, f) for f in schedule]
    events += [(f.end, 0, faults.revert, f) for f in schedule]
    for at, injecting, action, fault in sorted(events, key=lambda e: e[:2]):
        time.sleep(max(0.0, t0 + at - time.monotonic()))
        action(lab, fault)
        figures.faults[fault.kind] += injecting
        if on_fault is not None:
            on_fault(fault, bool(injecting))


def run_faults(
    seed: int,
    lab: NetLab,
    kinds: tuple[str, ...],
    figures: Figures,
    topics: tuple[str, ...],
    on_fault: OnFault | None = None,
) -> tuple[Publisher, str, float]:
    """Schedule ``seed`` while a publisher publishes to ``topics``, then the heal: the
    publisher, the schedule told in words, and the seconds the ring took to converge."""
    schedule = make_schedule(seed, [h.name for h in lab.hosts], HORIZON, kinds, FAULTS)
    told = f"seed {seed}: " + "; ".join(map(str, schedule))
    print(f"\n{told}")
    figures.schedules += 1
    t0 = time.monotonic()
    publisher = Publisher(lab.hosts[seed % HOSTS], f"s{seed}", t0 + HORIZON, topics)
    thread = threading.Thread(target=publisher.run, name="publisher")
    thread.start()
    try:
        run_schedule(lab, schedule, t0, figures, on_fault)
        lab.heal()  # a safety net: every fault was undone at its end
        # Timed from the end of the last fault, while the publisher goes on.
        took = timed(lab.converged, CONVERGE_LIMIT, f"membership and ring to converge ({told})")
    finally:
        thread.join(HORIZON + PUBLISH_TIMEOUT + 30)
    assert not thread.is_alive() and publisher.error is None, publisher.error
    figures.converged(took, seed)
    return publisher, told, took
