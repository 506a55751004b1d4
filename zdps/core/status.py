"""The status view: what ``zdps status`` shows of one node (docs/PROTOCOL.md §8.3)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zdps.topics import is_exact, parse_queue_key

if TYPE_CHECKING:
    from zdps.core.node import NodeCore

COUNTERS = (  # the node's counters, by their fixed names (README.md)
    "published",
    "routed_to_owner",
    "owned_published",
    "fanout_sent",
    "fanout_received",
    "delivered",
    "subscriber_queue_full",
    "peers_joined",
    "peers_lost",
    "ignored_unknown_peer",
    "deferred",
    "held",
    "flow_paused",
    "resyncs_asked",
    "sync_parts_lost",
    "replica_stored",
    "history_served",
    "id_clashes",
    "queue_delivered",
    "queue_undelivered",
)


def status(core: NodeCore, now: float) -> dict[str, Any]:
    """Identity, peers, ring, counters and errors, read from the core's parts."""
    detector = core.membership.detector
    peers = [
        {
            "node": p.node,
            "endpoint": p.endpoint,
            "state": str(p.state),
            "since_s": round(now - p.since, 3),
            "suspect": detector.is_suspect(p.node),
            "fanout_sent": core.owner.peer_fanout.get(p.node, 0),
        }
        for p in sorted(core.membership.peers.values(), key=lambda p: p.node)
    ]
    return {
        **core.info,
        "node": core.node,
        "scope": core.scope,
        "incarnation": core.incarnation,
        "detector": {"version": detector.version, "health": detector.health, **detector.counts},
        "uptime_s": round(now - core.started, 3),
        "peers": peers,
        "seeds": core.membership.seeds_view(now),
        "clashes": [
            {"endpoint": endpoint, "incarnation": inc, "seen_s_ago": round(now - at, 3)}
            for endpoint, (inc, at) in sorted(core.membership.clashes.items())
        ],
        "ring": {"nodes": sorted(core.ring.nodes), "digest": core.ring.digest()},
        "groups": {
            "local": core.overlay.local_groups,
            "cluster": core.overlay.groups,
        },
        "queue_members": {
            _queue_name(key): count for key, count in sorted(core.queues.local().items())
        },
        "topics_sequenced": len(core.sequencer),
        "history": {
            "topics": len(core.history.topics),
            "messages": len(core.history),
            "clashes": core.history.clashes(),
        },
        "pending_acks": core.pending,
        "paused": core.paused,
        "held": {"frames": len(core.clients.held), "bytes": core.clients.held_bytes},
        "counters": dict(core.counters),
        "subscriber_losses": core.losses.view(),
        "errors": dict(core.errors),
    }


def summary(core: NodeCore) -> str:
    """One line for systemd's STATUS=: peers, topics, local groups."""
    return ("draining: " if core.drain.active else "") + (
        f"{len(core.membership.alive())} peer(s) alive, {len(core.sequencer)} topic(s) "
        f"sequenced here, {core.overlay.local_groups} local group(s)"
    )


def _queue_name(key: bytes) -> str:
    """``NAME on TOPIC`` (``TOPIC*`` for a prefix) for a queue key."""
    name, subscription = parse_queue_key(key) or (key, b"")
    text = subscription[:-1] if is_exact(subscription) else subscription + b"*"
    return f"{name.decode(errors='replace')} on {text.decode(errors='replace')}"
