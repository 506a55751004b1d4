"""What the membership core asks of the node (``membership.py``): sends, disconnects,
peers up and down, id clashes, and what a limit refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from zdps.core.log_events import LogEvent
from zdps.wire.codec import NodeMessage


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` to whatever node listens at ``endpoint``.

    ``probe`` messages (the detector's) take the probe link, so they never wait
    behind data.
    """

    endpoint: str
    message: NodeMessage
    probe: bool = False


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Drop the connection to ``endpoint`` and anything queued on it."""

    endpoint: str


@dataclass(frozen=True, slots=True)
class PeerUp:
    node: str
    endpoint: str
    healed: bool = False  # declared dead here, and back in the same life: it was cut off
    parts: bool = False  # it speaks ``sync_part``: a large sync goes to it in parts (§5)


@dataclass(frozen=True, slots=True)
class PeerDown:
    node: str
    reason: str  # "dead", "left" or "restarted"
    why: str  # what showed it, for the operator


@dataclass(frozen=True, slots=True)
class Clash:
    """Another process uses this node's id: it advertises ``endpoint``. ``first``: seen
    there for the first time; ``proven``: it answered this node's challenge (clashes.py)."""

    endpoint: str
    incarnation: int
    first: bool
    proven: bool


@dataclass(frozen=True, slots=True)
class Refused:
    """Input refused by a limit: counted as ``code`` and logged."""

    code: str
    message: str


Action = Send | Disconnect | PeerUp | PeerDown | Clash | Refused | LogEvent
