"""Test hosts in network namespaces: one namespace per node, all on one bridge.

Everything is created by the test and removed at the end: a "switch" namespace holding
a bridge, and per host a namespace with a veth pair into that bridge and an address
in a test subnet that exists only inside these namespaces. Traffic never leaves them.
Requires root and iproute2; ``available()`` says why not otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.cluster.harness import free_port, wait_for, zdps_command


def available() -> str | None:
    """None if namespaces can be made here, else the one-line reason."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    probe = f"zdprobe{os.getpid() % 100000}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Host:
    name: str
    netns: str
    address: str
    api_port: int
    pub_port: int
    proc: subprocess.Popen | None = None

    @property
    def cluster(self) -> str:
        return f"tcp://{self.address}:7710"

    @property
    def api(self) -> str:
        return f"tcp://127.0.0.1:{self.api_port}"

    def run(self, *args: str, timeout: float = 10) -> subprocess.CompletedProcess:
        """A zdps CLI command inside this host's namespace."""
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, *zdps_command(), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def status(self) -> dict[str, Any] | None:
        done = self.run("status", "--json", "--node", self.api, "--timeout", "1", timeout=5)
        return json.loads(done.stdout) if done.returncode == 0 else None

    def alive_peers(self) -> set[str] | None:
        status = self.status()
        if status is None:
            return None
        return {p["node"] for p in status["peers"] if p["state"] == "alive"}


@dataclass
class NetLab:
    """A switch namespace with a bridge, and hosts plugged into it."""

    workdir: Path
    tag: str = field(default_factory=lambda: f"zd{os.getpid() % 100000}")
    hosts: list[Host] = field(default_factory=list)
    _namespaces: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.switch = f"{self.tag}sw"
        self.subnet = f"10.213.{os.getpid() % 250}"
        _ip("netns", "add", self.switch)
        self._namespaces.append(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")

    def add_host(self) -> Host:
        index = len(self.hosts) + 1
        netns = f"{self.tag}h{index}"
        _ip("netns", "add", netns)
        self._namespaces.append(netns)
        outer, inner = f"{self.tag}h{index}s", f"{self.tag}h{index}n"
        _ip(
            "link",
            "add",
            inner,
            "netns",
            netns,
            "type",
            "veth",
            "peer",
            "name",
            outer,
            "netns",
            self.switch,
        )
        _ip("-n", self.switch, "link", "set", outer, "master", "br0", "up")
        _ip("-n", netns, "link", "set", inner, "name", "eth0")
        address = f"{self.subnet}.{index}"
        _ip("-n", netns, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", netns, "link", "set", "eth0", "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        host = Host(f"h{index}", netns, address, free_port(), free_port())
        self.hosts.append(host)
        return host

    def start(self, host: Host, seeds: list[Host] = ()) -> None:
        args = [
            "ip",
            "netns",
            "exec",
            host.netns,
            *zdps_command(),
            "start",
            "--node-id",
            host.name,
            "--cluster",
            host.cluster,
            "--api",
            host.api,
            "--pub",
            f"tcp://127.0.0.1:{host.pub_port}",
        ]
        for seed in seeds:
            args += ["--seed", seed.cluster]
        log = (self.workdir / f"{host.name}.log").open("ab")
        host.proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        wait_for(lambda: host.status() is not None, 15, f"{host.name} to answer")

    def link(self, host: Host, up: bool) -> None:
        """Plug the host's cable in or out (a partition of that host from all others)."""
        _ip("-n", host.netns, "link", "set", "eth0", "up" if up else "down")

    def kill(self, host: Host) -> None:
        self.signal(host, signal.SIGKILL)
        host.proc.wait(5)

    def signal(self, host: Host, signum: int) -> None:
        """Send ``signum`` to the host's node (SIGKILL, SIGSTOP, SIGCONT ...)."""
        os.killpg(host.proc.pid, signum)

    def converged(self) -> bool:
        """Every running host sees all the others alive and has the same ring."""
        running = [h for h in self.hosts if h.proc is not None and h.proc.poll() is None]
        names = {h.name for h in running}
        rings = set()
        for host in running:
            status = host.status()
            if status is None:
                return False
            alive = {p["node"] for p in status["peers"] if p["state"] == "alive"}
            if alive != names - {host.name}:
                return False
            rings.add(status["ring"]["digest"])
        return len(rings) == 1

    def destroy(self) -> None:
        for host in self.hosts:
            if host.proc is not None and host.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(host.proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    host.proc.wait(5)
        for netns in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)


def timed(condition: Any, limit: float, what: str) -> float:
    """Seconds until ``condition`` holds (polling), failing after ``limit``."""
    started = time.monotonic()
    wait_for(condition, limit, what, interval=0.05)
    return time.monotonic() - started
