"""Tunables of the protocol cores (all times in seconds).

The first group are the user settings (``zdps.settings`` is their one definition: its
defaults, bounds and help text); the rest are protocol timings fixed by the spec,
changed only by tests.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class CoreConfig:
    """What the protocol cores need to know about the node's settings."""

    heartbeat_interval: float = 0.2  # pings: anti-entropy digests on the data link
    peer_timeout: float = 2.0  # join timeout; and a peer silent this long is dropped here
    probe_interval: float = 0.2
    probe_timeout: float = 0.1
    indirect_probes: int = 3
    suspicion_mult: float = 3.0
    suspicion_max_mult: float = 4.0
    max_payload: int = 1024 * 1024
    history: int = 1000  # messages kept per topic unless the topic sets its own
    history_ttl: float = 3600.0  # seconds a message is kept unless the topic sets its own
    replicas: int = 1  # R: nodes after the owner that store each topic's history
    ack_timeout: float = 10.0  # a forwarded publish is refused if no ack came back by then
    flow_window: int = 20_000  # data entries in flight to one peer before the node pauses
    idle_topic_ttl: float = 600.0  # sequencing state of a topic idle this long is dropped
    barrier_timeout: float = 8.0  # below the clients' 10 s default, so the node answers first
