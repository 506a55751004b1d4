"""redis-server and nats-server, started by the benchmark on free loopback ports.

Neither is the system service: each runs in the foreground as our child, bound to
127.0.0.1 only, with no persistence, and is stopped at the end of the run.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path

from .install import find_executable
from .runner import free_port, stop, track


def _wait_port(port: int, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


def _version(exe: str, pattern: str) -> str:
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    found = re.search(pattern, out.stdout + out.stderr)
    return found.group(1) if found else (out.stdout or out.stderr).strip()


class Server:
    name = ""
    exe_name = ""
    version_pattern = ""

    def __init__(self, log_dir: Path) -> None:
        exe = find_executable(self.exe_name)
        if not exe:
            raise RuntimeError(f"{self.exe_name} is not installed")
        self.exe = exe
        self.port = free_port()
        self.log = log_dir / f"{self.name}.log"
        self.version = _version(exe, self.version_pattern)
        with self.log.open("wb") as out:
            self.proc = track(
                subprocess.Popen(
                    self.command(),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=log_dir,
                    process_group=0,  # runner.AUTOGROUP
                )
            )
        _wait_port(self.port, self.proc, 15, self.name)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def command(self) -> list[str]:
        raise NotImplementedError

    def close(self) -> None:
        stop(self.proc, grace=5.0)


class RedisServer(Server):
    name = "redis-server"
    exe_name = "redis-server"
    version_pattern = r"v=(\S+)"

    def command(self) -> list[str]:
        return [
            self.exe,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--protected-mode", "yes",
            # Pub/sub clients are never cut off for a backlog: the workloads count loss
            # at the subscriber instead of having the server drop the connection.
            "--client-output-buffer-limit", "pubsub 0 0 0",
            "--loglevel", "warning",
        ]  # fmt: skip


class NatsServer(Server):
    name = "nats-server"
    exe_name = "nats-server"
    version_pattern = r"v(\d[\w.\-]*)"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        # Like Redis above: a subscriber that falls behind is not cut off as a "slow
        # consumer" (64 MB / 2 s by default); its loss shows up at the subscriber.
        config = self.log.with_suffix(".conf")
        config.write_text(
            f"listen: 127.0.0.1:{self.port}\n"
            "max_pending: 1073741824\n"
            'write_deadline: "60s"\n'
            "no_sys_acc: true\n"
        )
        return [self.exe, "-c", str(config)]
