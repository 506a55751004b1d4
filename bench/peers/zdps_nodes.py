"""zdps, driven only through its CLI: `zdps start` for the nodes, `zdps bench --json` for
the workloads. Nothing of the zdps client is reimplemented here.

One cluster is started per layout and kept for the whole run: `zdps-1` (one node that
both publishes and delivers) and `zdps-3` (publisher on A, the topic's owner B,
subscriber on C; fan-out subscribers spread over A, B and C).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .runner import BENCH_DIR, free_port, free_port_pair, stop, track

REPO = BENCH_DIR.parent


def zdps_command() -> list[str] | None:
    """The `zdps` console script next to this interpreter, else on PATH; None if absent."""
    script = Path(sys.executable).with_name("zdps")
    if script.exists():
        return [str(script)]
    found = shutil.which("zdps")
    return [found] if found else None


def bench_available() -> bool:
    cmd = zdps_command()
    if not cmd:
        return False
    try:
        out = subprocess.run([*cmd, "bench", "--help"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


def version() -> str:
    cmd = zdps_command()
    if not cmd:
        return "not installed"
    try:
        out = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip().rsplit(" ", 1)[-1] or "unknown"


def topic_owned_by(owner: str, nodes: list[str], prefix: str = "bench") -> str:
    """A topic name whose owner on the ring over `nodes` is `owner` (zdps.core.ring)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from zdps.core.ring import HashRing

    ring = HashRing(nodes)
    for i in range(100_000):
        topic = f"{prefix}-{i}"
        if ring.owner(topic) == owner:
            return topic
    raise RuntimeError(f"no topic owned by {owner} among 100000 candidates")


class Node:
    def __init__(
        self, node_id: str, log_dir: Path, seed: str | None, flags: tuple[str, ...] = ()
    ) -> None:
        self.node_id = node_id
        self.cluster, self.api = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
        self.pub = f"tcp://127.0.0.1:{free_port_pair()}"  # and the batch PUB, on the next
        args = [
            *(zdps_command() or ["zdps"]),
            "start",
            "--node-id", node_id,
            "--cluster", self.cluster,
            "--api", self.api,
            "--pub", self.pub,
            "--log-level", "warning",
        ]  # fmt: skip
        if seed:
            args += ["--seed", seed]
        args += flags
        self.log = log_dir / f"zdps-{node_id}.log"
        with self.log.open("wb") as out:
            self.proc = track(
                subprocess.Popen(
                    args,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=log_dir,
                    start_new_session=True,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def status(self) -> dict[str, Any] | None:
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"zdps node {self.node_id} exited with {self.proc.returncode}: "
                + self.log.read_text(errors="replace")[-600:]
            )
        try:
            out = subprocess.run(
                [*(zdps_command() or ["zdps"]), "status", "--json", "--node", self.api,
                 "--timeout", "1"],
                capture_output=True, text=True, timeout=15,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return None
        if out.returncode != 0:
            return None
        try:
            return json.loads(out.stdout)
        except json.JSONDecodeError:
            return None


class Cluster:
    """`zdps start` processes on free loopback ports, waited for until meshed."""

    def __init__(
        self,
        name: str,
        node_ids: list[str],
        log_dir: Path,
        timeout: float = 60,
        flags: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.nodes: dict[str, Node] = {}
        seed = None
        for node_id in node_ids:
            node = Node(node_id, log_dir, seed, flags)
            self.nodes[node_id] = node
            seed = seed or node.cluster
        deadline = time.monotonic() + timeout
        for node in self.nodes.values():
            others = set(self.nodes) - {node.node_id}
            while True:
                info = node.status()
                alive = {p["node"] for p in (info or {}).get("peers", []) if p["state"] == "alive"}
                if info is not None and others <= alive:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{name}: node {node.node_id} not ready (sees {sorted(alive)}) "
                        f"within {timeout} s"
                    )
                time.sleep(0.2)

    @property
    def pids(self) -> dict[str, int]:
        return {f"{self.name} {nid}": n.pid for nid, n in self.nodes.items()}

    def close(self) -> None:
        for node in self.nodes.values():
            stop(node.proc, grace=5.0)


def run_bench(
    *,
    pub_node: str,
    sub_nodes: list[str],
    topic: str,
    workload: str,
    size: int,
    count: int | None,
    subscribers: int = 1,
    rate: float | None = None,
    duration: float | None = None,
    timeout: float,
    log_dir: Path,
    ack: str = "owner",
) -> dict[str, Any]:
    """One `zdps bench --json` run: its single JSON object (plus the arguments used).

    With `duration` (and no `count`) the publisher runs for that many seconds instead.
    """
    args = [
        *(zdps_command() or ["zdps"]),
        "bench", "--json",
        "--pub-node", pub_node,
        "--publishers", "1",
        "--subscribers", str(subscribers),
        "--topic", topic,
        "--size", str(size),
        "--ack", ack,
    ]  # fmt: skip
    if count:
        args += ["--count", str(count)]
    for node in sub_nodes:
        args += ["--sub-node", node]
    if rate:
        args += ["--rate", str(rate)]
    if duration:
        args += ["--duration", str(duration)]
    err_path = log_dir / f"zdps-bench-{workload}.err"
    with err_path.open("wb") as err:
        proc = track(
            subprocess.Popen(
                args,
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                text=True,
            )
        )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc, grace=2.0)
        stderr = err_path.read_text(errors="replace").strip()[-600:]
        raise RuntimeError(
            f"zdps bench did not finish within {timeout:.0f} s"
            + (f"; stderr: {stderr}" if stderr else " (nothing on stderr)")
        ) from None
    finally:
        stop(proc, grace=2.0)
    if proc.returncode != 0:
        raise RuntimeError(
            f"zdps bench exited {proc.returncode}: " + err_path.read_text(errors="replace")[-800:]
        )
    lines = [line for line in out.splitlines() if line.strip().startswith("{")]
    if not lines:
        raise RuntimeError(f"zdps bench printed no JSON: {out[-400:]!r}")
    res = json.loads(lines[-1])
    res["args"] = args[1:]
    res.setdefault("lost", max(0, res.get("expected", 0) - res.get("received", 0)))
    return res
