"""Faults a schedule injects into a NetLab, each undone when its time is up.

A fault hits its targets for a duration: a node killed with -9 (restarted afterwards
with the same --node-id), frozen (SIGSTOP, then SIGCONT), cut off (link down), a
partition into two or three groups, a lossy cable (10 % of packets dropped each way)
or a slow one (every outgoing packet held 50 ms).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from tests.chaos.netlab import NetLab

KILL, STOP, LINK, SPLIT, LOSS, DELAY = "kill", "stop", "link", "split", "loss", "delay"
KINDS = (KILL, STOP, LINK, SPLIT, LOSS, DELAY)
LOSS_RATE = 0.10
DELAY_S = 0.050


@dataclass(frozen=True)
class Fault:
    """``kind`` on ``groups`` from ``at`` seconds into the schedule, for ``duration`` s.

    A split has two or three groups of hosts; every other kind one group of one host.
    """

    at: float
    kind: str
    groups: tuple[tuple[str, ...], ...]
    duration: float

    @property
    def hosts(self) -> set[str]:
        return {name for group in self.groups for name in group}

    @property
    def end(self) -> float:
        return self.at + self.duration

    def __str__(self) -> str:
        where = " | ".join(",".join(group) for group in self.groups)
        return f"{self.kind} {where} at {self.at:.1f}s for {self.duration:.1f}s"


def inject(lab: NetLab, fault: Fault) -> None:
    hosts = [[lab.host(name) for name in group] for group in fault.groups]
    target = hosts[0][0]
    if fault.kind == KILL:
        lab.kill(target)
    elif fault.kind == STOP:
        lab.signal(target, signal.SIGSTOP)
    elif fault.kind == LINK:
        lab.link(target, up=False)
    elif fault.kind == SPLIT:
        lab.split(hosts)
    elif fault.kind == LOSS:
        lab.loss(target, LOSS_RATE)
    elif fault.kind == DELAY:
        lab.delay(target, DELAY_S)
    else:
        raise ValueError(f"unknown fault {fault.kind!r}")


def revert(lab: NetLab, fault: Fault) -> None:
    """Undo ``fault``; schedules never overlap two faults on one host, so this is exact."""
    for name in fault.hosts:
        host = lab.host(name)
        if fault.kind == KILL:
            lab.restart(host)
        elif fault.kind == STOP:
            lab.signal(host, signal.SIGCONT)
        elif fault.kind == LINK:
            lab.link(host, up=True)
        else:
            lab.clear(host)
