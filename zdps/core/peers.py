"""A peer as the membership core's table holds it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PeerState(StrEnum):
    JOINING = "joining"  # learned of, hello sent, no hello heard back yet
    ALIVE = "alive"


@dataclass(slots=True)
class Peer:
    node: str
    endpoint: str
    incarnation: int
    state: PeerState
    since: float
    last_hello: float = 0.0
