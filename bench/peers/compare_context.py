"""What a whole `bench/compare` run shares: its log line, and the Redis and NATS servers
and zdps clusters that stay up from the first workload to the last."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Any


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

    def start(self) -> None:
        """Start the servers and zdps clusters; a system whose start fails is skipped."""
        from . import servers, zdps_nodes

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
        wanted = [s for s in ("zdps-1", "zdps-3") if s in systems]
        if wanted and not zdps_nodes.bench_available():
            reason = "`zdps bench` is not available (zdps bench --help failed)"
            for s in wanted:
                self.skipped[s] = reason
            self.problems.append(f"{' and '.join(wanted)} skipped: {reason}")
            log(f"skipping zdps: {reason}")
            wanted = []
        if "zdps-1" in wanted:
            cluster = self._try("zdps-1", lambda: zdps_nodes.Cluster("zdps-1", ["S"], self.log_dir))
            if cluster:
                self.clusters["zdps-1"] = cluster
                self.topics["zdps-1"] = "bench-one"
                log("zdps-1 node up")
        if "zdps-3" in wanted:
            cluster = self._try(
                "zdps-3", lambda: zdps_nodes.Cluster("zdps-3", ["A", "B", "C"], self.log_dir)
            )
            if cluster:
                self.clusters["zdps-3"] = cluster
                self.topics["zdps-3"] = zdps_nodes.topic_owned_by("B", ["A", "B", "C"])
                log(f"zdps-3 nodes up; topic {self.topics['zdps-3']!r} is owned by B")

    def _try(self, system: str, start: Any) -> Any:
        try:
            return start()
        except Exception as exc:
            reason = f"could not start: {type(exc).__name__}: {str(exc)[:300]}"
            self.skipped[system] = reason
            self.problems.append(f"{system} {reason}")
            log(f"skipping {system}: {reason}")
            return None

    def daemons(self, system: str) -> dict[str, int]:
        """The daemon processes behind a system, whose RSS is sampled while it runs."""
        if system == "redis" and self.redis:
            return {"redis-server": self.redis.pid}
        if system == "nats" and self.nats:
            return {"nats-server": self.nats.pid}
        if system in self.clusters:
            return self.clusters[system].pids
        return {}

    def close(self) -> None:
        for cluster in self.clusters.values():
            with contextlib.suppress(Exception):
                cluster.close()
        for server in (self.redis, self.nats):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.close()
