"""Signals as flags (zdps/daemon/signals.py): SIGHUP reloads, a first SIGTERM or SIGINT
drains, a second one stops; the wakeup fd hears each one."""

from __future__ import annotations

import os
import signal
import socket

import pytest

from zdps.daemon.signals import Signals

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("first", [signal.SIGTERM, signal.SIGINT])
def test_a_first_stop_signal_drains_a_second_stops(first: int) -> None:
    wake_r, wake_w = socket.socketpair()
    wake_w.setblocking(False)
    signals = Signals()
    signals.install(wake_w.fileno())
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        assert signals.reload and not signals.drain
        os.kill(os.getpid(), first)
        assert signals.drain and not signals.stop
        os.kill(os.getpid(), signal.SIGTERM)
        assert signals.stop
        assert len(wake_r.recv(16)) == 3  # one byte per signal
    finally:
        signals.restore()
        wake_r.close()
        wake_w.close()
    assert signal.getsignal(signal.SIGTERM) is not signals._on_signal
