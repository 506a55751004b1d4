"""Test hosts in network namespaces: one namespace per node, all on one bridge.

Everything is created by the test and removed at the end: a "switch" namespace holding
a bridge, and per host a namespace with a veth pair into that bridge and an address
in a test subnet that exists only inside these namespaces. Traffic never leaves them.
Requires root and iproute2; ``available()`` says why not otherwise.

Faults on the wire are iptables rules in the hosts' own namespaces, in chains of our
own (``ZDIN``/``ZDOUT``): drops between addresses (partitions), random drops (loss)
and NFQUEUE to a delayer process in the namespace (delay). The kernel here has no
netem, so these stand in for ``tc qdisc ... netem`` (docs/FAILURES.md, "Chaos suite").
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import zmq

from tests.cluster.harness import free_port, wait_for, zdps_command
from zdps import Client, ZdpsError
from zdps.keys import generate

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
DELAYER = Path(__file__).with_name("delayer.py")
DELAY_QUEUE = 7  # the NFQUEUE number; each host has its own namespace, so one number will do


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


def _in(netns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """A command inside ``netns`` (never in the namespace the tests run in)."""
    return subprocess.run(
        ["ip", "netns", "exec", netns, *args], check=check, capture_output=True, text=True
    )


def _probe(*args: str) -> subprocess.CompletedProcess:
    """Run a command in a throwaway namespace (to learn what works, touching nothing)."""
    probe = f"zdprobe{os.getpid() % 100000}"
    _ip("netns", "add", probe)
    try:
        return _in(probe, *args, check=False)
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)


def firewall_available() -> str | None:
    """None if iptables with random drops works in a namespace here, else the reason."""
    if shutil.which("iptables") is None:
        return "iptables is not installed"
    rule = ["OUTPUT", "-m", "statistic", "--mode", "random", "--probability", "0.1", "-j", "DROP"]
    done = _probe("iptables", "-w", "-A", *rule)
    return None if done.returncode == 0 else f"iptables cannot drop at random: {done.stderr}"


def delay_available() -> str | None:
    """None if the NFQUEUE delayer can run here, else why the delay fault is skipped."""
    done = _probe(sys.executable, str(DELAYER), "--check")
    lines = (done.stdout + done.stderr).strip().splitlines() or ["no output"]
    return None if done.returncode == 0 else f"delay (NFQUEUE) unavailable: {lines[-1]}"


def in_netns(netns: str, make: Callable[[], T]) -> T:
    """``make()`` run inside ``netns``; what it creates (sockets, threads) stays there.

    setns(2) moves only the calling thread, so a helper thread enters the namespace
    and calls ``make``: a socket belongs to the namespace it was created in, and a
    thread to the namespace of the thread that started it. Our own threads stay put.
    """
    made: dict[str, Any] = {}

    def enter() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {netns}")
            finally:
                os.close(fd)
            made["value"] = make()
        except Exception as exc:
            made["error"] = exc

    thread = threading.Thread(target=enter, name=f"setns-{netns}")
    thread.start()
    thread.join()
    if "error" in made:
        raise made["error"]
    return made["value"]


def _netns_context(netns: str) -> zmq.Context:
    """A ZeroMQ context for clients of a host: its IO thread (started by a first
    socket) connects from inside the host's namespace."""

    def make() -> zmq.Context:
        ctx = zmq.Context()
        ctx.socket(zmq.DEALER).close()
        return ctx

    return in_netns(netns, make)


@dataclass
class Host:
    name: str
    netns: str
    address: str
    api_port: int
    pub_port: int
    batch_pub_port: int
    ctx: zmq.Context
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

    def client(self, timeout: float = 1.0) -> Client:
        """A client of this host's node, connecting from inside the host's namespace."""
        return Client(self.api, timeout=timeout, context=self.ctx)

    def status(self) -> dict[str, Any] | None:
        """The node's status, or None if it does not answer within a second."""
        try:
            with self.client() as client:
                return client.status()
        except (ZdpsError, OSError):
            return None

    def raw_socket(self, kind: int = socket.SOCK_STREAM) -> socket.socket:
        """A plain IPv4 socket in this host's namespace (to probe the wire faults)."""
        return in_netns(self.netns, lambda: socket.socket(socket.AF_INET, kind))

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

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
    curve: bool = False  # CURVE between the nodes (docs/PROTOCOL.md §2.1)
    hosts: list[Host] = field(default_factory=list)
    _namespaces: list[str] = field(default_factory=list)
    _spawned: list[subprocess.Popen] = field(default_factory=list)
    _delayers: dict[str, subprocess.Popen] = field(default_factory=dict)

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
        ports = (free_port(), free_port(), free_port())
        host = Host(f"h{index}", netns, address, *ports, _netns_context(netns))
        self.hosts.append(host)
        return host

    def start(
        self, host: Host, seeds: list[Host] = (), extra: list[str] = (), wait: bool = True
    ) -> None:
        """Start the host's node (``extra``: more ``zdps start`` flags); unless not
        ``wait``, until it answers."""
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
            "--batch-pub",
            f"tcp://127.0.0.1:{host.batch_pub_port}",
        ]
        for seed in seeds:
            args += ["--seed", f"{seed.name}@{seed.cluster}" if self.curve else seed.cluster]
        if self.curve:
            args += ["--curve-secret-key", str(self._curve_key(host.name))]
            args += ["--curve-peers", str(self.workdir / "peers")]
        args += extra
        with (self.workdir / f"{host.name}.log").open("ab") as log:
            host.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        if wait:
            wait_for(lambda: host.status() is not None, 15, f"{host.name} to answer")

    def _curve_key(self, name: str) -> Path:
        """The host's secret key, made once; every host's public key is in ``peers``."""
        keys, peers = self.workdir / "keys", self.workdir / "peers"
        for other in self.hosts:
            if not (keys / f"{other.name}.key").exists():
                public, _ = generate(keys, other.name)
                peers.mkdir(exist_ok=True)
                shutil.copy(public, peers / public.name)
        return keys / f"{name}.key_secret"

    def restart(self, host: Host) -> None:
        """Start a killed node again with the same --node-id, seeded by every other host."""
        self.start(host, [h for h in self.hosts if h is not host])

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    def heal(self) -> None:
        """Undo every fault: no rules or delayers, links up, nodes thawed, dead ones restarted."""
        for host in self.hosts:
            self.clear(host)
            self.link(host, up=True)
            if host.running:
                self.signal(host, signal.SIGCONT)
            else:
                self.restart(host)

    def spawn(self, host: Host, args: list[str], name: str) -> tuple[subprocess.Popen, Path]:
        """A long-running zdps CLI command in the host's namespace; stdout goes to a file."""
        out = self.workdir / f"{name}.out"
        with out.open("wb") as o, (self.workdir / f"{name}.err").open("wb") as e:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", host.netns, *zdps_command(), *args],
                stdout=o,
                stderr=e,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self._spawned.append(proc)
        return proc, out

    # ------------------------------------------------------------------ the wire

    def _iptables(self, host: Host, *args: str) -> None:
        _in(host.netns, "iptables", "-w", *args)

    def _chains(self, host: Host) -> None:
        """Our chains in the host's namespace (made once, hooked first into INPUT/OUTPUT)."""
        if _in(host.netns, "iptables", "-w", "-S", "ZDIN", check=False).returncode == 0:
            return
        for chain, hook in (("ZDIN", "INPUT"), ("ZDOUT", "OUTPUT")):
            self._iptables(host, "-N", chain)
            self._iptables(host, "-I", hook, "-j", chain)

    def cut(self, host: Host, peers: list[Host]) -> None:
        """Drop everything between ``host`` and ``peers``, both ways, on the host's side."""
        self._chains(host)
        for peer in peers:
            self._iptables(host, "-A", "ZDIN", "-s", peer.address, "-j", "DROP")
            self._iptables(host, "-A", "ZDOUT", "-d", peer.address, "-j", "DROP")

    def split(self, groups: list[list[Host]]) -> None:
        """A partition into ``groups``: hosts talk only within their own group."""
        for group in groups:
            others = [h for g in groups if g is not group for h in g]
            for host in group:
                self.cut(host, others)

    def loss(self, host: Host, probability: float) -> None:
        """Drop each packet in or out of the host's eth0 with ``probability`` (a lossy cable)."""
        self._chains(host)
        rate = ["-m", "statistic", "--mode", "random", "--probability", str(probability)]
        self._iptables(host, "-A", "ZDIN", "-i", "eth0", *rate, "-j", "DROP")
        self._iptables(host, "-A", "ZDOUT", "-o", "eth0", *rate, "-j", "DROP")

    def delay(self, host: Host, seconds: float) -> None:
        """Hold every packet leaving the host's eth0 for ``seconds`` (a slow link)."""
        self._chains(host)
        command = [sys.executable, str(DELAYER), str(DELAY_QUEUE), str(seconds)]
        with (self.workdir / f"delayer-{host.name}.err").open("ab") as err:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", host.netns, *command],
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
            )
        self._delayers[host.name] = proc
        if proc.stdout.readline().strip() != b"ready":  # bound to the queue: packets wait
            raise AssertionError(f"the delayer in {host.name} did not start")
        queue = ["-j", "NFQUEUE", "--queue-num", str(DELAY_QUEUE), "--queue-bypass"]
        self._iptables(host, "-A", "ZDOUT", "-o", "eth0", *queue)

    def clear(self, host: Host) -> None:
        """Remove every wire fault of the host: rules flushed, its delayer let go."""
        if _in(host.netns, "iptables", "-w", "-S", "ZDIN", check=False).returncode == 0:
            self._iptables(host, "-F", "ZDIN")
            self._iptables(host, "-F", "ZDOUT")
        delayer = self._delayers.pop(host.name, None)
        if delayer is not None:
            delayer.terminate()  # it releases the packets it holds, then exits
            try:
                delayer.wait(5)
            except subprocess.TimeoutExpired:
                delayer.kill()
                delayer.wait(5)
            delayer.stdout.close()

    def link(self, host: Host, up: bool) -> None:
        """Plug the host's cable in or out (a partition of that host from all others)."""
        _ip("-n", host.netns, "link", "set", "eth0", "up" if up else "down")

    def kill(self, host: Host) -> None:
        self.signal(host, signal.SIGKILL)
        host.proc.wait(5)
        host.proc = None

    def signal(self, host: Host, signum: int) -> None:
        """Send ``signum`` to the host's node (SIGKILL, SIGSTOP, SIGCONT ...)."""
        os.killpg(host.proc.pid, signum)

    def converged(self) -> bool:
        """Every running host sees all the others alive and has the same ring."""
        running = [h for h in self.hosts if h.running]
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
        procs = [h.proc for h in self.hosts if h.proc is not None]
        for proc in [*procs, *self._spawned, *self._delayers.values()]:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
        for host in self.hosts:
            host.ctx.destroy(linger=0)
        for netns in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)


def timed(condition: Any, limit: float, what: str) -> float:
    """Seconds until ``condition`` holds (polling), failing after ``limit``."""
    started = time.monotonic()
    wait_for(condition, limit, what, interval=0.05)
    return time.monotonic() - started
