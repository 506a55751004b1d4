"""Every node setting, defined once (each a ``zdps.setting.Setting``): its type, default,
bounds and help text.

The TOML loader (``zdps.daemon.config``), the flags of ``zdps start``, the protocol
cores' defaults (``zdps.core.tunables``) and the settings table of docs/PROTOCOL.md come
from here; tests/test_settings.py checks conf/zdps.toml and README.md against it. What
relates two keys (peer_timeout and heartbeat_interval, probe_timeout and probe_interval,
advertise and a wildcard cluster) and endpoint syntax are checked by ``Config.check``;
the help texts state those rules too.

No pyzmq and no ``zdps.daemon`` here: the sans-IO cores import this module.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

from zdps.setting import Setting
from zdps.wire.limits import MAX_HISTORY, MAX_HISTORY_TTL

DEFAULT_CLUSTER = "tcp://127.0.0.1:7710"
DEFAULT_API = "tcp://127.0.0.1:7711"
DEFAULT_PUB = "tcp://127.0.0.1:7712"
LOG_LEVELS = ("debug", "info", "warning", "error")
MAX_PAYLOAD_LIMIT = 16 * 1024 * 1024  # well below the daemon's frame budget
MAX_SECONDS = 3600  # longest failure-detector timing: anything longer is a typo
MAX_HWM = 2**31 - 1  # ZeroMQ high-water marks are C ints


def _seconds(name: str, default: float, help: str) -> Setting:
    """A failure-detector timing: over 0 s and at most an hour."""
    return Setting(name, float, default, help, min=0, min_open=True, max=MAX_SECONDS, unit="s")


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "node_id",
        str,
        None,
        "Unique name of this node in its cluster.",
        min=1,
        max=128,
        factory=socket.gethostname,
        shown="the host name",
    ),
    Setting(
        "scope",
        str,
        "default",
        "Cluster name; nodes with different scopes never merge, even when they can reach "
        "each other.",
        min=1,
    ),
    Setting(
        "cluster",
        str,
        DEFAULT_CLUSTER,
        "Endpoint bound for peers (membership gossip and routed publishes).",
    ),
    Setting(
        "advertise",
        str,
        None,
        "Endpoint peers dial to reach this node; required when cluster binds 0.0.0.0 or *.",
        shown="the cluster endpoint",
    ),
    Setting(
        "seeds",
        list,
        (),
        "Cluster endpoints of nodes to join through (one reachable is enough, this node "
        "itself is fine); with CURVE, NAME@ENDPOINT, NAME the node there.",
        shown="none",
    ),
    Setting(
        "curve_secret_key",
        str,
        None,
        "This node's CURVE secret key file (from `zdps keygen`): the cluster speaks only "
        "CURVE, with the nodes in curve_peers; node_id is the key's name.",
        shown="none (no CURVE: any process that reaches the cluster endpoint is a peer)",
    ),
    Setting(
        "curve_peers",
        str,
        None,
        "Directory of the public key files (NAME.key) of the nodes allowed in the cluster, "
        "read again on SIGHUP; required with curve_secret_key.",
        shown="none",
    ),
    Setting(
        "curve_clients",
        str,
        None,
        "Directory of the public key files of the clients allowed on the API and PUB "
        "sockets, which then speak only CURVE; read again on SIGHUP.",
        shown="none (the API and PUB sockets are open to whoever reaches them)",
    ),
    Setting(
        "permissions",
        str,
        None,
        "TOML file of per-client topic permissions, by client key name (needs "
        "curve_clients; docs/PROTOCOL.md §2.2); read again on SIGHUP.",
        shown="none (every client may publish and subscribe to any topic)",
    ),
    Setting(
        "api", str, DEFAULT_API, "Endpoint for clients (publish, status, members, topic delete)."
    ),
    Setting(
        "pub", str, DEFAULT_PUB, "Endpoint of the local PUB that any ZeroMQ SUB can connect to."
    ),
    Setting(
        "batch_pub",
        str,
        None,
        "Endpoint of the local PUB that sends whole batches, for batch-aware subscribers "
        "(the zdps clients' subscribe(..., batches=True)).",
        shown="the pub endpoint's port + 1",
    ),
    Setting(
        "metrics",
        str,
        None,
        "HOST:PORT where Prometheus scrapes the node's metrics (/metrics); docs/METRICS.md.",
        shown="none (no metrics endpoint)",
    ),
    Setting(
        "log_level",
        str,
        "info",
        "Least severe log lines written to stderr, in any case; debug adds client connections, "
        "group changes and a status line (every 10 s, if it changed).",
        choices=LOG_LEVELS,
    ),
    Setting(
        "log_format",
        str,
        "text",
        "Log lines as text (key=value, without the time under journald, which adds it) or "
        "json (one object per line).",
        choices=("text", "json"),
    ),
    _seconds("probe_interval", 0.2, "Seconds between failure probes, each of one peer in turn."),
    _seconds(
        "probe_timeout",
        0.1,
        "Seconds to wait for a probe's ack before asking other peers; shorter than probe_interval.",
    ),
    Setting(
        "indirect_probes",
        int,
        3,
        "Peers asked to probe a peer that does not answer.",
        min=0,
        max=16,
    ),
    Setting(
        "suspicion_mult",
        float,
        3.0,
        "Shortest suspicion before a dead verdict, in probe intervals (times max(1, log10 n) "
        "with n nodes).",
        min=1,
        max=1000,
    ),
    Setting(
        "suspicion_max_mult",
        float,
        4.0,
        "Longest suspicion, in shortest suspicions; confirmations from other nodes shorten it.",
        min=1,
        max=1000,
    ),
    _seconds("heartbeat_interval", 0.2, "Seconds between pings (anti-entropy digests)."),
    Setting(
        "ping_fanout",
        int,
        3,
        "Peers pinged each heartbeat interval, in turn; every peer when there are no more.",
        min=1,
        max=10_000,
    ),
    _seconds(
        "peer_timeout",
        2.0,
        "Seconds to wait for a joining peer, and of silence after which this node alone drops "
        "a peer; at least 3 heartbeat intervals.",
    ),
    Setting(
        "max_payload",
        int,
        1024 * 1024,
        "Largest payload accepted from a publisher; larger ones are refused.",
        min=1,
        max=MAX_PAYLOAD_LIMIT,
        unit="bytes",
    ),
    Setting(
        "max_topic",
        int,
        255,
        "Longest topic or prefix local clients may publish to or subscribe to, in bytes "
        "of UTF-8 (255 is the protocol's limit); longer ones are refused (invalid_topic).",
        min=1,
        max=255,
        unit="bytes",
    ),
    Setting(
        "max_publish_rate",
        int,
        0,
        "Messages a second one client may publish (0: no limit); a publish over it is "
        "refused (rate_limited).",
        min=0,
        max=100_000_000,
        unit="messages a second",
    ),
    Setting(
        "max_clients",
        int,
        10_000,
        "Connections to the API and PUB sockets at once (a zdps client has one, and one per "
        "subscription); a further one is refused (too_many_clients).",
        min=1,
        max=1_000_000,
        unit="connections",
    ),
    Setting(
        "max_peers",
        int,
        1000,
        "Other nodes this node keeps in its peer table; a further one is not admitted "
        "(too_many_peers).",
        min=1,
        max=100_000,
        unit="nodes",
    ),
    Setting(
        "max_groups",
        int,
        100_000,
        "Distinct topics and prefixes the local subscribers may subscribe to; a further "
        "one is refused (too_many_groups): its SUB gets nothing of it.",
        min=1,
        max=10_000_000,
        unit="groups",
    ),
    Setting(
        "max_subscriptions",
        int,
        20_000,
        "Subscriptions one SUB connection may hold (a zdps client holds two per topic: it and "
        "its loss notices); a further one is refused (too_many_subscriptions).",
        min=1,
        max=10_000_000,
        unit="subscriptions",
    ),
    Setting(
        "pub_hwm",
        int,
        100_000,
        "Messages queued per local subscriber before a slow one starts losing them "
        "(0: no limit); one slow reader never stalls the cluster.",
        min=0,
        max=MAX_HWM,
        unit="messages",
    ),
    Setting(
        "history",
        int,
        1000,
        "Messages each topic keeps for recovery and subscribe --since, unless set by "
        "`topic create` (0: no history, no replication).",
        min=0,
        max=MAX_HISTORY,
        unit="messages per topic",
    ),
    Setting(
        "history_ttl",
        float,
        3600.0,
        "Seconds a message stays in history, unless set by `topic create`.",
        min=0,
        min_open=True,
        max=MAX_HISTORY_TTL,
        unit="s",
    ),
    Setting(
        "replicas",
        int,
        1,
        "Nodes after a topic's owner that keep a copy of its history; --ack replicated waits "
        "for them.",
        min=0,
        max=8,
    ),
    Setting(
        "drain_timeout",
        float,
        30.0,
        "Seconds a drain (SIGTERM, zdps drain) may wait for the nodes it hands its history "
        "to before it leaves anyway; 0 sends it and leaves at once.",
        min=0,
        max=MAX_SECONDS,
        unit="s",
    ),
)
BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}


def default(name: str) -> Any:
    """The default of the setting ``name`` (for dataclass fields elsewhere)."""
    return BY_NAME[name].default_value()


def markdown_table(names: Iterable[str]) -> str:
    """The docs' table of the named settings, one row each (docs/PROTOCOL.md §4.4)."""
    rows = ["| Key | Default | Bounds | What it is |", "|---|---|---|---|"]
    for setting in (BY_NAME[name] for name in names):
        row = (f"`{setting.name}`", setting.shown_default, setting.bounds or "any", setting.help)
        rows.append("| " + " | ".join(row) + " |")
    return "\n".join(rows) + "\n"
