"""systemd's notify protocol (zdps/daemon/notify.py), with a datagram socket standing
in for systemd's: what is sent, when, and nothing without ``NOTIFY_SOCKET``."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from zdps.daemon.notify import STATUS_EVERY, SystemdNotifier

pytestmark = pytest.mark.timeout(20)


@pytest.fixture(params=["path", "abstract"])
def systemd(request, tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        address = name = str(tmp_path / "notify")
    else:
        name = f"@zdps-test-{os.getpid()}-{id(sock)}"
        address = "\0" + name[1:]
    sock.bind(address)
    sock.settimeout(2)
    yield sock, name
    sock.close()


def received(sock: socket.socket) -> list[str]:
    """Every datagram waiting, as lines."""
    lines = []
    sock.setblocking(False)
    try:
        while True:
            lines += sock.recv(4096).decode().split("\n")
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(2)
    return lines


def test_ready_once_joined_status_when_changed_and_the_watchdog_at_half_its_time(systemd) -> None:
    sock, name = systemd
    env = {"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    notifier = SystemdNotifier(env)
    assert notifier.active and notifier.watchdog_every == 1.0
    notifier.tick(10.0, False, lambda: "0 peers")
    assert received(sock) == ["STATUS=0 peers", "WATCHDOG=1"]  # not READY: not joined yet
    notifier.tick(10.5, True, lambda: "1 peer")
    assert received(sock) == ["READY=1"]  # the status is looked at every STATUS_EVERY only
    notifier.tick(10.0 + STATUS_EVERY, True, lambda: "1 peer")
    assert received(sock) == ["STATUS=1 peer", "WATCHDOG=1"]
    notifier.tick(12.5, True, lambda: "1 peer")  # ready once; status unchanged
    assert received(sock) == ["WATCHDOG=1"]
    notifier.reloading()
    notifier.reloaded()
    notifier.stopping()
    lines = received(sock)
    assert lines[0] == "RELOADING=1" and lines[1].startswith("MONOTONIC_USEC=")
    assert lines[2:] == ["READY=1", "STOPPING=1"]
    notifier.close()


def test_pings_come_only_from_the_loop_a_stuck_loop_sends_none(systemd) -> None:
    sock, name = systemd
    notifier = SystemdNotifier({"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "100000"})
    notifier.tick(0.0, True, lambda: "s")
    assert "WATCHDOG=1" in received(sock)
    sock.settimeout(0.3)  # six watchdog periods without a turn of the loop
    with pytest.raises(TimeoutError):
        sock.recv(4096)
    notifier.close()


def test_nothing_without_notify_socket_and_no_watchdog_for_another_pid(systemd) -> None:
    name = systemd[1]
    assert not SystemdNotifier({}).active
    SystemdNotifier({}).tick(0.0, True, lambda: "s")  # a no-op
    other = SystemdNotifier({"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert other.watchdog_every is None
    other.close()
