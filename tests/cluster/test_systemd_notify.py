"""A real ``zdps start`` under a stand-in for systemd's notify socket (Type=notify):
READY=1 only once it knows it is alone (its seed silent for peer_timeout), watchdog pings
from the loop that stop while the process is stopped, RELOADING=1 and READY=1 around
SIGHUP, STOPPING=1 on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.cluster.harness import free_port, zdps_command

pytestmark = pytest.mark.timeout(60)


def lines_until(sock: socket.socket, wanted: str, timeout: float) -> tuple[list[str], float]:
    """Datagrams' lines until one is ``wanted``; and when it came."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while wanted not in lines:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            lines += sock.recv(4096).decode().split("\n")
        except TimeoutError:
            raise AssertionError(f"no {wanted} within {timeout} s: {lines}") from None
    return lines, time.monotonic()


def wait_stopped(pid: int) -> None:
    """Until the kernel shows the process stopped (state T)."""
    deadline = time.monotonic() + 5
    stat = Path(f"/proc/{pid}/stat")
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "T":
        assert time.monotonic() < deadline, "the process did not stop"


def test_notify_ready_watchdog_reload_and_stop(tmp_path) -> None:
    name = f"@zdps-notify-{os.getpid()}"
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd.bind("\0" + name[1:])
    ports = [free_port() for _ in range(5)]
    args = [
        *zdps_command(), "start", "--node-id", "A", "--peer-timeout", "1",
        "--cluster", f"tcp://127.0.0.1:{ports[0]}", "--api", f"tcp://127.0.0.1:{ports[1]}",
        "--pub", f"tcp://127.0.0.1:{ports[2]}", "--batch-pub", f"tcp://127.0.0.1:{ports[3]}",
        "--seed", f"tcp://127.0.0.1:{ports[4]}",  # nobody there
    ]  # fmt: skip
    env = {**os.environ, "NOTIFY_SOCKET": name, "WATCHDOG_USEC": "400000"}
    started = time.monotonic()
    with (tmp_path / "A.log").open("wb") as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        lines, ready_at = lines_until(systemd, "READY=1", 15)
        assert ready_at - started >= 0.9, "ready before its seed's timeout"
        assert any(line.startswith("STATUS=0 peer(s) alive") for line in lines), lines
        lines_until(systemd, "WATCHDOG=1", 1)  # every 0.2 s: half of 0.4 s
        proc.send_signal(signal.SIGSTOP)  # a loop that does not turn: no pings
        wait_stopped(proc.pid)
        systemd.setblocking(False)
        while True:  # what it sent before it stopped
            try:
                systemd.recv(4096)
            except BlockingIOError:
                break
        systemd.settimeout(1.0)
        with pytest.raises(TimeoutError):
            systemd.recv(4096)
        proc.send_signal(signal.SIGCONT)
        lines_until(systemd, "WATCHDOG=1", 2)
        proc.send_signal(signal.SIGHUP)
        lines, _ = lines_until(systemd, "RELOADING=1", 5)
        lines, _ = lines_until(systemd, "READY=1", 5)
        proc.send_signal(signal.SIGTERM)
        lines_until(systemd, "STOPPING=1", 5)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        systemd.close()
