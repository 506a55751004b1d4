"""Tunables of the protocol cores (all times in seconds).

The first group are the user settings (``zdps.settings`` is their one definition: its
defaults, bounds and help text); the rest are protocol timings fixed by the spec,
changed only by tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from zdps.core.membership_config import MembershipConfig
from zdps.core.swim import SwimConfig
from zdps.settings import default


@dataclass(slots=True)
class CoreConfig:
    """What the protocol cores need to know about the node's settings."""

    # pings: anti-entropy digests on the data link
    heartbeat_interval: float = default("heartbeat_interval")
    ping_fanout: int = default("ping_fanout")  # peers pinged an interval, in turn
    # join timeout; and a peer silent this long is dropped here
    peer_timeout: float = default("peer_timeout")
    probe_interval: float = default("probe_interval")
    probe_timeout: float = default("probe_timeout")
    indirect_probes: int = default("indirect_probes")
    suspicion_mult: float = default("suspicion_mult")
    suspicion_max_mult: float = default("suspicion_max_mult")
    max_payload: int = default("max_payload")
    max_topic: int = default("max_topic")  # bytes of a topic or prefix from a local client
    max_publish_rate: int = default("max_publish_rate")  # per client, a second; 0: none
    max_peers: int = default("max_peers")  # nodes in the peer table at most
    max_groups: int = default("max_groups")  # distinct groups local subscribers may hold
    history: int = default("history")  # messages kept per topic unless the topic sets its own
    history_ttl: float = default("history_ttl")  # seconds kept unless the topic sets its own
    replicas: int = default("replicas")  # R: nodes after the owner storing a topic's history
    drain_timeout: float = default("drain_timeout")  # a drain's longest wait (drain.py)
    ack_timeout: float = 10.0  # a forwarded publish is refused if no ack came back by then
    flow_window: int = 20_000  # data entries in flight to one peer before the node pauses
    idle_topic_ttl: float = 600.0  # sequencing state of a topic idle this long is dropped
    # how long a node waits for other nodes on a client's behalf (ready, history); below
    # the clients' 10 s default, so the node answers first
    request_timeout: float = 8.0

    def detector(self) -> SwimConfig:
        return SwimConfig(
            probe_interval=self.probe_interval,
            probe_timeout=self.probe_timeout,
            indirect_probes=self.indirect_probes,
            suspicion_mult=self.suspicion_mult,
            suspicion_max_mult=self.suspicion_max_mult,
            silence_timeout=self.peer_timeout,
        )

    def membership(self) -> MembershipConfig:
        """A peer silent for peer_timeout is gone, so its tombstone outlives that."""
        return MembershipConfig(
            heartbeat_interval=self.heartbeat_interval,
            ping_fanout=self.ping_fanout,
            join_timeout=self.peer_timeout,
            tombstone_ttl=self.peer_timeout + self.heartbeat_interval,
            max_peers=self.max_peers,
        )
