"""CPU time per process from /proc (utime + stime), and `zdps bench --json` run with the
CPU of its own processes: for `bench/ab` (`peers.zdps_rev`) and `bench/compare`
(`peers.zdps_nodes`) alike.

`zdps bench` forks its subscriber processes first and then its publishers
(multiprocessing, fork context); `bench_process` finds them, in order of start time, and
samples them every `SAMPLE_S` while the run lasts. An exited child stays readable (a
zombie) until the bench process joins it, which it does only after every subscriber has
reported, so the last sample is the final figure for a publisher; for a subscriber it
can miss at most one interval of its idle end. The bench process's own CPU (`bench`) is
what `wait4()` reports for it and its joined children, less theirs.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from .runner import stop, track

CLK_TCK = os.sysconf("SC_CLK_TCK")
SAMPLE_S = 0.05


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


def rusage_seconds(rusage: Any) -> float:
    return rusage.ru_utime + rusage.ru_stime if rusage is not None else 0.0


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


def bench_roles(subscribers: int, publishers: int = 1, sub_procs: int = 0) -> list[str]:
    """The names of `zdps bench`'s forked processes, in the order it starts them: its
    subscriber processes (one per subscriber, at most `sub_procs` or 2), then its
    publishers."""
    procs = min(sub_procs or 2, subscribers)
    subs = ["sub"] if procs == 1 else [f"sub{i + 1}" for i in range(procs)]
    pubs = ["pub"] if publishers == 1 else [f"pub{i + 1}" for i in range(publishers)]
    return subs + pubs


def bench_process(
    args: list[str], *, roles: list[str], timeout: float, err_path: Path, cwd: Path | None = None
) -> tuple[dict[str, Any], dict[str, float]]:
    """Run `args` (a `zdps bench --json` command line) to its end: its JSON object, and
    the CPU seconds of each of its forked processes (named by `roles`, in start order)
    and of itself (`bench`). Raises if it fails, prints no JSON, or forks otherwise."""
    with err_path.open("wb") as err:
        proc = track(
            subprocess.Popen(
                args,
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                process_group=0,  # its own process group, with its children (AUTOGROUP)
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
    try:
        while True:
            done, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if done:
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"zdps bench did not finish within {timeout:.0f} s; stderr: " + tail(err_path)
                )
            if len(kids) < len(roles):
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
        raise RuntimeError(f"zdps bench exited {proc.returncode}: {tail(err_path)}")
    out = b"".join(chunks).decode(errors="replace")
    lines = [line for line in out.splitlines() if line.strip().startswith("{")]
    if not lines:
        raise RuntimeError(f"zdps bench printed no JSON: {out[-400:]!r}")
    res = json.loads(lines[-1])
    if len(kids) != len(roles):
        raise RuntimeError(f"expected {len(roles)} child processes of zdps bench, saw {len(kids)}")
    cpu = dict(zip(roles, kids.values(), strict=True))
    cpu["bench"] = max(0.0, rusage_seconds(rusage) - sum(cpu.values()))
    return res, cpu


def tail(path: Path, size: int = 800) -> str:
    text = path.read_text(errors="replace").strip() if path.exists() else ""
    return text[-size:] or "(nothing on stderr)"
