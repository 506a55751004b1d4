"""What a whole `bench/compare` run shares: its log line, and the Redis and NATS servers
and zdps clusters that stay up from the first workload to the last."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Any


def cluster_of(system: str) -> str:
    """The zdps cluster a system runs on: `zdps-3-batches`, `-csub` and `-repl` share
    `zdps-3`'s nodes and topic, so they run side by side with it."""
    return "zdps-3" if system.startswith("zdps-3") else system


def log(message: str) -> None:
    print(f"[compare {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Context:
    """What the whole run shares: servers, zdps clusters, topics, the log folder."""

    def __init__(self, args: argparse.Namespace, log_dir: Path) -> None:
        self.args = args
        self.profile = args.profile
        self.log_dir = log_dir
        self.redis = self.nats = None
        self.clusters: dict[str, Any] = {}
        self.topics: dict[str, str] = {}
        self.skipped: dict[str, str] = {}
        self.problems: list[str] = []
        self.zdps_version = "not run"
        self.csub: Path | None = None  # the C SUB's binary, built for this run

    def start(self) -> None:
        """Start the servers and zdps clusters; a system whose start fails is skipped."""
        from . import csub, servers, zdps_nodes

        systems = self.args.systems
        if "redis" in systems:
            self.redis = self._try("redis", lambda: servers.RedisServer(self.log_dir))
            if self.redis:
                log(f"redis-server {self.redis.version} on 127.0.0.1:{self.redis.port}")
        if "nats" in systems:
            self.nats = self._try("nats", lambda: servers.NatsServer(self.log_dir))
            if self.nats:
                log(f"nats-server {self.nats.version} on 127.0.0.1:{self.nats.port}")
        self.zdps_version = zdps_nodes.version()
        wanted = [s for s in systems if s.startswith("zdps")]
        if wanted and not zdps_nodes.bench_available():
            reason = "`zdps bench` is not available (zdps bench --help failed)"
            for s in wanted:
                self.skipped[s] = reason
            self.problems.append(f"{', '.join(wanted)} skipped: {reason}")
            log(f"skipping zdps: {reason}")
            wanted = []
        if "zdps-1" in wanted:
            cluster = self._try("zdps-1", lambda: zdps_nodes.Cluster("zdps-1", ["S"], self.log_dir))
            if cluster:
                self.clusters["zdps-1"] = cluster
                self.topics["zdps-1"] = "bench-one"
                log("zdps-1 node up")
        three = [s for s in wanted if cluster_of(s) == "zdps-3"]
        if three:
            cluster = self._try(
                three, lambda: zdps_nodes.Cluster("zdps-3", ["A", "B", "C"], self.log_dir)
            )
            if cluster:
                self.clusters["zdps-3"] = cluster
                # Owned by B with its replica on A (R = 1, the default): A has no
                # subscriber, so each message costs one extra copy, as in bench/replication.
                self.topics["zdps-3"] = zdps_nodes.topic_placed(["B", "A"], ["A", "B", "C"])
                log(
                    f"zdps-3 nodes up; topic {self.topics['zdps-3']!r} is owned by B, "
                    "replicated to A"
                )
        if "zdps-3-csub" in wanted and "zdps-3" in self.clusters:
            self.csub = self._try("zdps-3-csub", lambda: csub.build(self.log_dir))
            if self.csub:
                log("C SUB built")

    def _try(self, systems: str | list[str], start: Any) -> Any:
        """`start()`, or None with every one of `systems` skipped, saying why."""
        names = [systems] if isinstance(systems, str) else systems
        try:
            return start()
        except Exception as exc:
            reason = f"could not start: {type(exc).__name__}: {str(exc)[:300]}"
            for system in names:
                self.skipped[system] = reason
            self.problems.append(f"{', '.join(names)} {reason}")
            log(f"skipping {', '.join(names)}: {reason}")
            return None

    def daemons(self, system: str) -> dict[str, int]:
        """The daemon processes behind a system, whose RSS is sampled while it runs."""
        if system == "redis" and self.redis:
            return {"redis-server": self.redis.pid}
        if system == "nats" and self.nats:
            return {"nats-server": self.nats.pid}
        if cluster_of(system) in self.clusters:
            return self.clusters[cluster_of(system)].pids
        return {}

    def nodes(self, system: str) -> dict[str, Any]:
        """The zdps nodes behind a zdps system, by node id (none for the others)."""
        cluster = self.clusters.get(cluster_of(system))
        return dict(cluster.nodes) if cluster else {}

    def close(self) -> None:
        for cluster in self.clusters.values():
            with contextlib.suppress(Exception):
                cluster.close()
        for server in (self.redis, self.nats):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.close()
