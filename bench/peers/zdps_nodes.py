"""zdps, driven only through its CLI: `zdps start` for the nodes, `zdps bench --json` for
the workloads. Nothing of the zdps client is reimplemented here.

One cluster is started per layout and kept for the whole run: `zdps-1` (one node that
both publishes and delivers) and `zdps-3` (publisher on A, the topic's owner B,
subscriber on C; fan-out subscribers spread over A, B and C).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from . import cpu
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


def topic_placed(successors: list[str], nodes: list[str], prefix: str = "bench") -> str:
    """A topic whose owner and next replicas on the ring over `nodes` are `successors`."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from zdps.core.ring import HashRing

    ring = HashRing(nodes)
    for i in range(100_000):
        topic = f"{prefix}-{i}"
        if ring.successors(topic, len(successors)) == successors:
            return topic
    raise RuntimeError(f"no topic placed on {successors} among 100000 candidates")


# Messages each node queues per local SUB before that SUB loses them (the default is
# 100,000). A throughput run pushes its 200,000 messages through the cluster faster than
# a Python SUB reads them: with room for them all, the run measures how fast the SUB
# gets everything, not how much it loses (the nodes count what it would have lost).
PUB_HWM = 1_000_000


BIND_ATTEMPTS = 3  # a port found free may be taken before the node binds it


class Node:
    def __init__(
        self, node_id: str, log_dir: Path, seed: str | None, flags: tuple[str, ...] = ()
    ) -> None:
        self.node_id = node_id
        self.log = log_dir / f"zdps-{node_id}.log"
        for attempt in range(BIND_ATTEMPTS):
            self._spawn(log_dir, seed, flags)
            if not self._lost_a_port() or attempt == BIND_ATTEMPTS - 1:
                return

    def _lost_a_port(self, timeout: float = 30) -> bool:
        """Whether the node exited because a port it was given got taken meanwhile;
        False once it answers (or fails for any other reason: status() says)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return "Address already in use" in self.log.read_text(errors="replace")
            try:
                if self.status() is not None:
                    return False
            except RuntimeError:
                continue
        return False

    def _spawn(self, log_dir: Path, seed: str | None, flags: tuple[str, ...]) -> None:
        self.cluster, self.api = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
        self.pub = f"tcp://127.0.0.1:{free_port_pair()}"  # and the batch PUB, on the next
        args = [
            *(zdps_command() or ["zdps"]),
            "start",
            "--node-id", self.node_id,
            "--cluster", self.cluster,
            "--api", self.api,
            "--pub", self.pub,
            "--log-level", "warning",
            "--pub-hwm", str(PUB_HWM),
        ]  # fmt: skip
        if seed:
            args += ["--seed", seed]
        args += flags
        with self.log.open("wb") as out:
            self.proc = track(
                subprocess.Popen(
                    args,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=log_dir,
                    process_group=0,  # runner.AUTOGROUP
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
        curve: bool = False,
    ) -> None:
        self.name = name
        self.nodes: dict[str, Node] = {}
        keys = curve_keys(log_dir / f"{name}-keys", node_ids) if curve else {}
        seed = None
        for node_id in node_ids:
            node = Node(node_id, log_dir, seed, flags + keys.get(node_id, ()))
            self.nodes[node_id] = node
            seed = seed or (f"{node_id}@{node.cluster}" if curve else node.cluster)
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


def curve_keys(directory: Path, node_ids: list[str]) -> dict[str, tuple[str, ...]]:
    """`zdps keygen` for each node; the `zdps start` flags that make each a CURVE node
    of one allow-list (docs/PROTOCOL.md §2.1)."""
    peers = directory / "peers"
    peers.mkdir(parents=True)
    flags = {}
    for node_id in node_ids:
        subprocess.run(
            [*(zdps_command() or ["zdps"]), "keygen", node_id, "--dir", str(directory / node_id)],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        public = directory / node_id / f"{node_id}.key"
        (peers / public.name).write_bytes(public.read_bytes())
        secret = str(directory / node_id / f"{node_id}.key_secret")
        flags[node_id] = ("--curve-secret-key", secret, "--curve-peers", str(peers))
    return flags


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
    batches: bool = False,
) -> dict[str, Any]:
    """One `zdps bench --json` run: its single JSON object, plus the arguments used
    (`args`) and the CPU seconds of its processes (`cpu_s`: `sub`/`sub1`..., `pub`,
    `bench`; `peers.cpu`).

    With `duration` (and no `count`) the publisher runs for that many seconds instead;
    with `subscribers` 0 it only publishes; `batches`: its subscribers receive whole
    batches (`--batches`).
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
    if batches:
        args.append("--batches")
    res, used = cpu.bench_process(
        args,
        roles=cpu.bench_roles(subscribers),
        timeout=timeout,
        err_path=log_dir / f"zdps-bench-{workload}.err",
    )
    res["args"] = args[1:]
    res["cpu_s"] = used
    res.setdefault("lost", max(0, res.get("expected", 0) - res.get("received", 0)))
    return res


def members(api: str, topic: str) -> dict[str, int]:
    """`zdps members TOPIC --json` asked of the node at `api`: subscribers per node."""
    out = subprocess.run(
        [*(zdps_command() or ["zdps"]), "members", topic, "--json", "--node", api,
         "--timeout", "2"],
        capture_output=True, text=True, timeout=15,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"zdps members failed: {out.stderr.strip()[-400:]}")
    return json.loads(out.stdout).get("nodes") or {}


READ_SYSCALLS = {"0", "63"}  # read(2) on x86_64, on arm64


def waiting_on_stdin(pid: int) -> bool:
    """Is the process blocked reading a pipe (its stdin, for `zdps publish`)?"""
    try:
        if "pipe" in Path(f"/proc/{pid}/wchan").read_text():
            return True
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:
        return False
    return len(fields) > 1 and fields[0] in READ_SYSCALLS and fields[1] == "0x0"


def publish_stdin(
    *, api: str, topic: str, lines: int, size: int, timeout: float, log_dir: Path
) -> dict[str, Any]:
    """`zdps publish --no-ack TOPIC` fed `lines` lines of `size` bytes on stdin.

    The lines are written only once the process is connected and waits on its stdin
    (Python's start-up is not part of the figure): `start_ns` is then, `end_ns` when it
    exited; `cpu_s` has the CPU seconds it used from then on (`pub`: wait4's, less
    what /proc said it had used when the lines were written).
    """
    args = [*(zdps_command() or ["zdps"]), "publish", "--no-ack", "--node", api, topic]
    data = (b"s" * size + b"\n") * lines
    log = log_dir / "zdps-publish-stdin.log"
    with log.open("wb") as out:
        proc = track(
            subprocess.Popen(
                args, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                process_group=0,  # runner.AUTOGROUP
            )
        )  # fmt: skip
    assert proc.stdin is not None
    deadline = time.monotonic() + timeout
    try:
        while not waiting_on_stdin(proc.pid):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "zdps publish did not come to read its stdin: "
                    + log.read_text(errors="replace")[-600:]
                )
            time.sleep(0.005)
        failure: list[BaseException] = []

        def write() -> None:
            try:
                proc.stdin.write(data)
                proc.stdin.close()
            except (BrokenPipeError, OSError) as exc:
                failure.append(exc)

        idle_cpu = cpu.cpu_seconds(proc.pid) or 0.0  # start-up, not publishing
        start_ns = time.monotonic_ns()
        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        while True:
            done, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if done:
                end_ns = time.monotonic_ns()
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"zdps publish did not finish within {timeout:.0f} s")
            time.sleep(0.002)
        writer.join(5)
    finally:
        stop(proc, grace=2.0)
        with contextlib.suppress(OSError):
            proc.stdin.close()
    if proc.returncode != 0 or failure:
        raise RuntimeError(
            f"zdps publish exited {proc.returncode}"
            + (f" ({failure[0]!r})" if failure else "")
            + ": "
            + log.read_text(errors="replace")[-600:]
        )
    return {
        "published": lines,
        "start_ns": start_ns,
        "end_ns": end_ns,
        "publish_s": (end_ns - start_ns) / 1e9,
        "args": args[1:],
        "cpu_s": {"pub": max(0.0, cpu.rusage_seconds(rusage) - idle_cpu)},
    }
