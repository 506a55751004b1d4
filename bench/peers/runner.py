"""Child processes: start them, read their READY/RESULT lines, and always end them.

Every process the benchmark starts goes through `Child` (or `track`), which records it
in one registry; `kill_all()` ends each of them by process group, and `bench/compare`
calls it on normal exit, on errors and on Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .common import cpu_per_message, load_samples, result

BENCH_DIR = Path(__file__).resolve().parent.parent
# AUTOGROUP: every child gets a process group of its own (process_group=0: killed as
# one), never a session of its own. With Linux's scheduler autogroups
# (/proc/sys/kernel/sched_autogroup_enabled) each session shares the CPUs equally with
# the others, so a system whose processes sit in several sessions (three zdps nodes and
# the bench) was scheduled worse than one whose processes share one (relay-4's relays
# are forked by its subscriber): zdps-3 at 10,000 msg/s, one revision, p99 55-163 ms
# with a session per node, 2.4-3.0 ms without.
_REGISTRY: list[subprocess.Popen] = []
_LOCK = threading.Lock()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port that was free on 127.0.0.1 a moment ago, picked at run time."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_port_pair() -> int:
    """A port that was free on 127.0.0.1 a moment ago, and the one after it too: a
    node's pub endpoint, whose batch PUB takes the next port unless told otherwise
    (revisions from before the batch PUB do not know the flag)."""
    while True:
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


def track(proc: subprocess.Popen) -> subprocess.Popen:
    with _LOCK:
        _REGISTRY.append(proc)
    return proc


def stop(proc: subprocess.Popen, grace: float = 3.0) -> None:
    """SIGTERM the process group, then SIGKILL it if it has not exited after `grace`.

    Every child is started with `process_group=0`, so its pid is its group id
    (AUTOGROUP says why not a session of its own).
    """
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
        return
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def kill_all() -> None:
    with _LOCK:
        procs = list(_REGISTRY)
        _REGISTRY.clear()
    for proc in procs:
        stop(proc, grace=2.0)


class Child:
    """One `python -m peers.worker MODULE ROLE CONFIG` process, or with `argv` any
    program that speaks the same READY/RESULT lines (the C SUB, `peers.csub`)."""

    def __init__(
        self,
        module: str,
        role: str,
        cfg: dict[str, Any],
        log_dir: Path,
        name: str,
        argv: list[str] | None = None,
    ):
        self.name = name
        self.log = log_dir / f"{name}.log"
        self.ready_info: dict[str, Any] | None = None
        self.result: dict[str, Any] | None = None
        self._ready = threading.Event()
        self._done = threading.Event()
        env = {**os.environ, "PYTHONPATH": str(BENCH_DIR), "PYTHONUNBUFFERED": "1"}
        if argv is None:
            argv = [sys.executable, "-m", "peers.worker", module, role, json.dumps(cfg)]
        with self.log.open("wb") as err:
            self.proc = track(
                subprocess.Popen(
                    argv,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    cwd=BENCH_DIR,
                    env=env,
                    text=True,
                    process_group=0,  # its own process group, killed as one (AUTOGROUP)
                )
            )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("READY"):
                self.ready_info = json.loads(line[5:].strip() or "{}")
                self._ready.set()
            elif line.startswith("RESULT "):
                self.result = json.loads(line[7:])
                self._done.set()
        self._ready.set()
        self._done.set()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout) and self.ready_info is not None

    def wait(self, timeout: float) -> dict[str, Any] | None:
        """The RESULT, once reported (the process may still be lingering), or None."""
        self._done.wait(timeout)
        return self.result

    def error(self) -> str:
        text = self.log.read_text(errors="replace").strip() if self.log.exists() else ""
        return f"{self.name}: exit {self.proc.poll()}; " + (text[-800:] or "no stderr")


def run_peer(
    module: str, cfg: dict[str, Any], *, sub_procs: int = 1, log_dir: Path | None = None
) -> dict[str, Any]:
    """Run one workload through one peer: subscriber process(es) first, then the publisher.

    `cfg["subscribers"]` subscriber connections are spread over `sub_procs` processes
    (role `fsub`), or one process with one subscriber (role `sub`).
    """
    own_tmp = None
    if log_dir is None:
        own_tmp = tempfile.TemporaryDirectory(prefix="bench-")
        log_dir = Path(own_tmp.name)
    children: list[Child] = []
    try:
        subscribers = cfg.get("subscribers", 1)
        fanout = cfg["workload"] == "fanout"
        subs: list[Child] = []
        per_proc = [
            subscribers // sub_procs + (i < subscribers % sub_procs) for i in range(sub_procs)
        ]
        for i, n in enumerate(per_proc if fanout else [1]):
            sub_cfg = {**cfg, "connections": n, "samples_path": str(log_dir / f"sub{i}.lat")}
            child = Child(module, "fsub" if fanout else "sub", sub_cfg, log_dir, f"{module}-sub{i}")
            subs.append(child)
            children.append(child)
        for child in subs:
            if not child.wait_ready(cfg.get("setup_timeout_s", 30)):
                raise RuntimeError(f"subscriber not ready: {child.error()}")
        pub = Child(module, "pub", cfg, log_dir, f"{module}-pub")
        children.append(pub)
        budget = cfg["timeout_s"] + 30
        started = time.monotonic()
        pub_result = pub.wait(budget)
        if pub_result is None:
            raise RuntimeError(f"publisher failed: {pub.error()}")
        sub_results = []
        for child in subs:
            r = child.wait(max(1.0, budget - (time.monotonic() - started)))
            if r is None:
                raise RuntimeError(f"subscriber failed: {child.error()}")
            sub_results.append(r)
        received = sum(r["received"] for r in sub_results)
        last = max((r["last_ns"] for r in sub_results if r["received"]), default=0)
        duration = (last - pub_result["start_ns"]) / 1e9 if last else 0.0
        count = cfg["count"]
        samples = load_samples([str(log_dir / f"sub{i}.lat") for i in range(len(subs))])
        extra = {k: v for k, v in pub_result.items() if k not in ("start_ns", "end_ns")}
        extra.pop("published", None)
        used = extra.pop("cpu_s", None) or {}  # raw pyzmq and relay-4 report it (zmq_raw)
        for r in sub_results:
            used |= r.get("cpu_s") or {}
        if used:
            extra |= cpu_per_message(used, pub_result["published"])
        return result(
            published=pub_result["published"],
            received=received,
            expected=count * subscribers,
            duration_s=duration,
            size=cfg["size"],
            subscribers=subscribers,
            samples_ns=samples,
            publish_s=(pub_result["end_ns"] - pub_result["start_ns"]) / 1e9,
            timed_out=any(r.get("timed_out") for r in sub_results),
            **extra,
        )
    finally:
        for child in children:
            stop(child.proc, grace=1.0)
        if own_tmp is not None:
            own_tmp.cleanup()
