"""The membership core's timings and bounds (``membership.py``), from the node's settings
(``tunables.py``); tests build their own."""

from __future__ import annotations

from dataclasses import dataclass

from zdps.settings import default


@dataclass(slots=True)
class MembershipConfig:
    heartbeat_interval: float = 0.2
    ping_fanout: int = default("ping_fanout")  # peers pinged an interval, in turn
    join_timeout: float = 2.0
    seed_retry_min: float = 0.25
    seed_retry_max: float = 2.0
    tombstone_ttl: float = 10.0
    lost_retry_ttl: float = 600.0  # how long a peer declared dead is redialed (netsplit heal)
    max_peers: int = default("max_peers")  # nodes in the peer table at most (a memory bound)
