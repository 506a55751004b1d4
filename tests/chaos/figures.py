"""The chaos suite's figures, added up over every schedule and printed as one line."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

PREFIX = "chaos summary:"


@dataclass
class WorkFigures:
    """The work-queue workload's (test_work_queue.py): a durable consumer's members."""

    schedules: int = 0
    failed: list[int] = field(default_factory=list)  # seeds of schedules that broke invariants
    published: int = 0
    acked: int = 0
    processed: int = 0  # distinct messages some member processed (and acked)
    unprocessed: int = 0  # acknowledged, yet processed by no member
    redelivered: int = 0  # copies flagged as such (deliveries > 1): allowed, counted
    unflagged: int = 0  # copies after a message's first that claim to be its first
    members_killed: int = 0  # members killed with their node, and started anew

    def part(self) -> str:
        failed = ",".join(map(str, self.failed)) or "none"
        return (
            f"work queue: schedules {self.schedules} (failed seeds: {failed}),"
            f" published {self.published} / acked {self.acked} / processed {self.processed}"
            f" / acked-but-unprocessed {self.unprocessed}, redelivered {self.redelivered},"
            f" unflagged duplicates {self.unflagged}, members killed {self.members_killed}"
        )


@dataclass
class Figures:
    mode: str = ""
    ack_level: str = ""
    skipped: str = ""  # why the suite did not run at all
    notes: list[str] = field(default_factory=list)  # e.g. a fault kind that could not run
    schedules: int = 0  # of both workloads; the figures below are the subscribers'
    curve: int = 0  # schedules run with CURVE between the nodes
    failed: list[int] = field(default_factory=list)  # seeds of schedules that broke invariants
    faults: Counter = field(default_factory=Counter)
    published: int = 0
    acked: int = 0
    delivered: int = 0  # distinct messages delivered to at least one subscriber
    acked_lost: int = 0  # acknowledged, yet missing at a subscriber that stayed subscribed
    unacked_lost: int = 0  # not acknowledged and delivered nowhere
    gaps: int = 0  # unrecoverable gaps the subscribers reported
    redelivered: int = 0  # the same message again in a later epoch (allowed, counted)
    slowest: float = 0.0
    stalled: float = 0.0  # longest time publishes after the heal took to be acked again
    slowest_seed: int | None = None
    work: WorkFigures = field(default_factory=WorkFigures)

    def converged(self, seconds: float, seed: int) -> None:
        if seconds >= self.slowest:
            self.slowest, self.slowest_seed = seconds, seed

    def line(self) -> str:
        if self.skipped:
            return f"{PREFIX} skipped: {self.skipped}"
        kinds = " ".join(f"{kind} {n}" for kind, n in sorted(self.faults.items()))
        failed = ",".join(map(str, self.failed)) or "none"
        parts = [
            f"{PREFIX} mode {self.mode}, schedules {self.schedules} (failed seeds: {failed};"
            f" {self.curve} with CURVE)",
            f"faults {sum(self.faults.values())} ({kinds})",
            f"messages published {self.published} / acked {self.acked} ({self.ack_level})"
            f" / delivered {self.delivered} / acked-but-lost {self.acked_lost}"
            f" / unacked-lost {self.unacked_lost}",
            f"gaps {self.gaps}, redelivered {self.redelivered}",
            *([self.work.part()] if self.work.schedules else []),
            f"slowest convergence {self.slowest:.2f} s (seed {self.slowest_seed})",
            f"longest publish stall after the heal {self.stalled:.1f} s",
            *self.notes,
        ]
        return "; ".join(parts)
