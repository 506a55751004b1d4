"""One zdps revision's own CLI, for `bench/ab`: its `zdps start` clusters (through
`peers.zdps_nodes.Cluster`) and its `zdps bench --json`, with the CPU time each of its
processes used (`peers.cpu`: /proc/PID/stat, utime + stime).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import cpu, zdps_nodes
from .runner import stop


@contextlib.contextmanager
def executable(zdps: Path) -> Iterator[None]:
    """Make `peers.zdps_nodes` (Node, Cluster) run this `zdps` instead of the project's."""
    saved = zdps_nodes.zdps_command
    zdps_nodes.zdps_command = lambda: [str(zdps)]
    try:
        yield
    finally:
        zdps_nodes.zdps_command = saved


def cluster(zdps: Path, name: str, node_ids: list[str], log_dir: Path) -> zdps_nodes.Cluster:
    """`zdps start` nodes of this revision on free 127.0.0.1 ports, meshed; or raise.

    If a node does not come up, the ones already started are stopped before raising.
    """
    started: list[subprocess.Popen] = []
    real_track = zdps_nodes.track

    def tracking(proc: subprocess.Popen) -> subprocess.Popen:
        started.append(proc)
        return real_track(proc)

    zdps_nodes.track = tracking
    try:
        with executable(zdps):
            return zdps_nodes.Cluster(name, node_ids, log_dir, timeout=60)
    except BaseException:
        for proc in started:
            stop(proc, grace=2.0)
        raise
    finally:
        zdps_nodes.track = real_track


# ---------------------------------------------------------------------- zdps bench


def run_bench(
    zdps: Path,
    *,
    pub_node: str,
    sub_node: str,
    topic: str,
    count: int,
    size: int,
    timeout: float,
    rate: float = 0,
    ack: str = "owner",
    log_dir: Path,
    name: str,
) -> tuple[dict[str, Any], dict[str, float]]:
    """One `zdps bench --json` of this revision: its JSON object, and CPU seconds of
    its processes: `pub`, `sub` (its forked children) and `bench` (itself)."""
    args = [
        str(zdps), "bench", "--json",
        "--pub-node", pub_node,
        "--sub-node", sub_node,
        "--publishers", "1",
        "--subscribers", "1",
        "--topic", topic,
        "--size", str(size),
        "--count", str(count),
        "--rate", str(rate),
        "--ack", ack,
    ]  # fmt: skip
    return cpu.bench_process(
        args,
        roles=cpu.bench_roles(1),
        timeout=timeout,
        err_path=log_dir / f"{name}.err",
        cwd=log_dir,
    )
