"""What the SWIM detector (``swim.py``) asks of the membership core: probe-link
messages to peers, deaths with what decided them, and its own new suspicions."""

from __future__ import annotations

from dataclasses import dataclass

from zdps.wire import probes


@dataclass(frozen=True, slots=True)
class Tell:
    """Send ``message`` to peer ``node`` on the probe link."""

    node: str
    message: probes.Probe | probes.ProbeReq | probes.ProbeAck | probes.ProbeNack | probes.Verdict


@dataclass(frozen=True, slots=True)
class Dead:
    """``node`` is dead here (already forgotten by the detector), and what decided it."""

    node: str
    why: str  # for the operator: which timer ran out, or who said so


@dataclass(frozen=True, slots=True)
class Suspected:
    """This node's own probe of ``node`` failed, and ``node`` was not suspected yet."""

    node: str


Action = Tell | Dead | Suspected
