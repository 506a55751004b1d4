"""One zdps revision's own CLI, for `bench/ab`: its `zdps start` clusters (through
`peers.zdps_nodes.Cluster`) and its `zdps bench --json`, with the CPU time each
process used, read from /proc/PID/stat (utime + stime).

`zdps bench` forks its subscriber processes first and then its publishers
(multiprocessing, fork context); with one subscriber and one publisher its two children
are therefore, in order of start time, `sub` and `pub`. They are sampled every
`SAMPLE_S` while the run lasts. An exited child stays readable (a zombie) until the
bench process joins it, which it does only after every subscriber has reported, so the
last sample is the final figure for the publisher; for the subscriber it can miss at
most one interval of its idle end. The bench process's own CPU (`bench`) is what
`wait4()` reports for it and its joined children, less theirs.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import zdps_nodes
from .runner import stop, track

CLK_TCK = os.sysconf("SC_CLK_TCK")
SAMPLE_S = 0.05


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


# ---------------------------------------------------------------------- /proc


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields from the third (state) on, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads, live and exited), in seconds."""
    fields = _stat(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def machine_ticks() -> tuple[int, int]:
    """(busy, steal) clock ticks of all CPUs since boot, from /proc/stat's `cpu` line.

    busy is user + nice + system + irq + softirq; steal is time the hypervisor gave away.
    """
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return user + nice + system + irq + softirq, steal


def _children(pid: int) -> list[tuple[int, int]]:
    """(start time, pid) of every process whose parent is `pid`."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is not None and int(fields[1]) == pid:
            found.append((int(fields[19]), int(entry.name)))
    return sorted(found)


def _forked(pid: int, cmdline: bytes) -> bool:
    """Is `pid` a fork of the process run as `cmdline` (not something it exec'd)?

    An exited child (a zombie, until its parent joins it) has an empty cmdline.
    """
    try:
        own = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    if own:
        return own.endswith(cmdline)
    fields = _stat(pid)
    return fields is not None and fields[0] == "Z"


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
    ]  # fmt: skip
    err_path = log_dir / f"{name}.err"
    with err_path.open("wb") as err:
        proc = track(
            subprocess.Popen(
                args,
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                cwd=log_dir,
                start_new_session=True,  # its own process group, with its children
            )
        )
    chunks: list[bytes] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    own_cmdline = b"".join(arg.encode() + b"\0" for arg in args)  # after the interpreter
    kids: dict[int, float] = {}  # pid -> last CPU seconds seen; ordered by start time
    rusage = None
    status = 0
    try:
        while True:
            done, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if done:
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"zdps bench did not finish within {timeout:.0f} s; stderr: " + _tail(err_path)
                )
            if len(kids) < 2:
                for _, pid in _children(proc.pid):
                    if pid not in kids and _forked(pid, own_cmdline):
                        kids[pid] = 0.0
            for pid in kids:
                seconds = cpu_seconds(pid)
                if seconds is not None:
                    kids[pid] = seconds
            time.sleep(SAMPLE_S)
    finally:
        stop(proc, grace=2.0)
    reader.join(10)
    if proc.returncode != 0:
        raise RuntimeError(f"zdps bench exited {proc.returncode}: {_tail(err_path)}")
    out = b"".join(chunks).decode(errors="replace")
    lines = [line for line in out.splitlines() if line.strip().startswith("{")]
    if not lines:
        raise RuntimeError(f"zdps bench printed no JSON: {out[-400:]!r}")
    res = json.loads(lines[-1])
    if len(kids) != 2:
        raise RuntimeError(f"expected 2 child processes of zdps bench, saw {len(kids)}")
    sub_s, pub_s = kids.values()  # subscribers are started before publishers
    total = rusage.ru_utime + rusage.ru_stime if rusage is not None else 0.0
    cpu = {"pub": pub_s, "sub": sub_s, "bench": max(0.0, total - pub_s - sub_s)}
    return res, cpu


def _tail(path: Path, size: int = 800) -> str:
    text = path.read_text(errors="replace").strip() if path.exists() else ""
    return text[-size:] or "(nothing on stderr)"
