"""Real zdps daemons in real processes on loopback, started through the `zdps` CLI."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zdps import Client, ZdpsError


def zdps_command() -> list[str]:
    """The installed `zdps` console script next to this interpreter, else `python -m`."""
    script = Path(sys.executable).with_name("zdps")
    if script.exists():
        return [str(script)]
    found = shutil.which("zdps")
    return [found] if found else [sys.executable, "-m", "zdps_cli"]


_GIVEN: set[int] = set()  # ports free_port handed out in this process


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (picked at run time), and
    not handed out before: the kernel may offer one port twice in a row, and a node
    given it for two endpoints refuses to start (a CI run saw pub == batch_pub)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


def wait_for(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.02
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = condition()
        except (ZdpsError, OSError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@dataclass
class NodeProc:
    node_id: str
    cluster: str
    api: str
    pub: str
    batch_pub: str
    proc: subprocess.Popen
    log: Path

    def client(self, timeout: float = 5.0) -> Client:
        return Client(self.api, timeout=timeout)

    def status(self) -> dict[str, Any]:
        with self.client(timeout=2.0) as client:
            return client.status()

    def alive_peers(self) -> set[str]:
        return {p["node"] for p in self.status()["peers"] if p["state"] == "alive"}

    def members(self, topic: str) -> dict[str, Any]:
        with self.client() as client:
            return client.members(topic)

    def counters(self) -> dict[str, int]:
        return self.status()["counters"]

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def exit_code(self, timeout: float) -> int:
        """The node's exit status once it exits within ``timeout`` s; else its threads'
        stacks (SIGABRT, which ``zdps start`` has faulthandler dump) and its log's end."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
            raise AssertionError(
                f"{self.node_id} did not exit within {timeout} s; its log ends:\n"
                + self.logs()[-6000:]
            ) from None


@dataclass
class Cluster:
    """Starts nodes on free loopback ports and stops every one of them at the end."""

    workdir: Path
    nodes: dict[str, NodeProc] = field(default_factory=dict)
    procs: list[subprocess.Popen] = field(default_factory=list)

    def start(
        self,
        node_id: str,
        seeds: list[NodeProc] = (),
        wait: bool = True,
        same_as: NodeProc | None = None,
        **flags: Any,
    ) -> NodeProc:
        """Start a node on free ports, or on the endpoints of ``same_as`` (a restart)."""
        if same_as is not None:
            cluster, api, pub = same_as.cluster, same_as.api, same_as.pub
            batch_pub = same_as.batch_pub
        else:
            cluster, api, pub, batch_pub = (f"tcp://127.0.0.1:{free_port()}" for _ in range(4))
        args = [
            *zdps_command(),
            "start",
            "--node-id",
            node_id,
            "--cluster",
            cluster,
            "--api",
            api,
            "--pub",
            pub,
            "--batch-pub",
            batch_pub,
        ]
        for seed in seeds:
            args += ["--seed", seed.cluster]
        for key, value in flags.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        log = self.workdir / f"{node_id}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.procs.append(proc)
        node = NodeProc(node_id, cluster, api, pub, batch_pub, proc, log)
        self.nodes[node_id] = node
        if wait:
            wait_for(lambda: proc.poll() is None and node.status(), 15, f"{node_id} to answer")
        return node

    def run(
        self, *args: str, input: str | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess:
        """Run a zdps CLI command to completion."""
        return subprocess.run(
            [*zdps_command(), *args], input=input, capture_output=True, text=True, timeout=timeout
        )

    def spawn(self, *args: str, name: str) -> tuple[subprocess.Popen, Path, Path]:
        """Start a long-running zdps CLI command (e.g. subscribe) writing to files.

        SIGINT gets its default action back in the child: a shell running the tests as a
        background job (``bash .ci/run &``) has them ignore it, and Python keeps that.
        """
        out, err = self.workdir / f"{name}.out", self.workdir / f"{name}.err"
        with out.open("wb") as o, err.open("wb") as e:
            proc = subprocess.Popen(
                [*zdps_command(), *args],
                stdout=o,
                stderr=e,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
        self.procs.append(proc)
        return proc, out, err

    def three(self, **flags: Any) -> tuple[NodeProc, NodeProc, NodeProc]:
        """Nodes A, B and C, B and C seeded with A, meshed."""
        a = self.start("A", **flags)
        b = self.start("B", seeds=[a], **flags)
        c = self.start("C", seeds=[a], **flags)
        self.wait_mesh()
        return a, b, c

    def wait_mesh(self, timeout: float = 10) -> None:
        """Wait until every running node sees every other one alive."""
        running = {n.node_id: n for n in self.nodes.values() if n.proc.poll() is None}
        for node in running.values():
            expected = set(running) - {node.node_id}
            wait_for(
                lambda node=node, expected=expected: node.alive_peers() == expected,
                timeout,
                f"{node.node_id} to see {sorted(expected)}",
            )

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
