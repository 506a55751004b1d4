"""The steps a client operation asks of its driver, and what it awaits meanwhile.

Every client operation (``Session``'s, ``publishing``'s) is a generator that yields
these steps and is resumed with their result; it does no IO and reads time only from
the session's clock. ``Client`` (blocking) and ``AsyncClient`` (asyncio) are two
drivers that carry out the same steps over ZeroMQ, so the protocol is written once
and a driver only decides how to wait. Steps are frozen: a test compares them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from zdps.wire.api import Op

T = TypeVar("T")


@dataclass(eq=False, slots=True)
class Pending:
    """What one operation awaits: its refs' outcomes as they arrive, its watch's events.

    Compared by identity: the asyncio driver keys its wake-ups on it.
    """

    outcomes: dict[int, Any] = field(default_factory=dict)  # ref -> result or ZdpsError
    events: deque[dict] = field(default_factory=deque)  # watch updates not yet emitted


@dataclass(frozen=True, slots=True)
class Send:
    """Queue ``frame`` on the API socket, taking in what arrives meanwhile.

    Resumed with True once queued, False if there was no room by ``until``: the node
    does not read (it is down, or saturated), and nothing may block without a deadline.
    """

    frame: bytes
    until: float


@dataclass(frozen=True, slots=True)
class Wait:
    """Resume once ``pending`` may have news, or at ``until`` (None: no limit).

    A driver may resume earlier (the blocking one does on any frame), so the operation
    looks at ``pending`` and the clock again.
    """

    pending: Pending
    until: float | None


@dataclass(frozen=True, slots=True)
class Drain:
    """Take in what has already arrived, without waiting (between frames of a window)."""


DRAIN = Drain()


@dataclass(frozen=True, slots=True)
class Sleep:
    """Do nothing for ``seconds`` (a recovery's retry, or its re-check of a gap)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Dial:
    """Connect the subscription's SUB to ``endpoint``, before any filter (§9.4)."""

    endpoint: str


@dataclass(frozen=True, slots=True)
class Filter:
    """Subscribe the SUB to ``add``, then unsubscribe ``drop``, in that order."""

    add: tuple[bytes, ...] = ()
    drop: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class Emit:
    """Hand ``items`` to the caller of an iterating operation, in order."""

    items: list


@dataclass(frozen=True, slots=True)
class Request:
    """A recovery's step: make request ``op``; resumed with its result, None if it failed.

    ``Session.serve`` carries it out as Send and Wait steps, so a recovery knows
    nothing of refs, frames or timeouts.
    """

    op: Op


@dataclass(frozen=True, slots=True)
class Report:
    """A recovery's step: tell the node ``op`` (a ``lost`` report) without waiting for
    its answer; ``Session.serve`` sends it if there is room at once, and goes on."""

    op: Op


# What a driver carries out (Dial and Filter only while subscribing).
Step = Send | Wait | Drain | Sleep | Dial | Filter | Emit

Operation = Generator[Step, Any, T]
