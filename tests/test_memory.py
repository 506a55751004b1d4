"""zdps/memory.py: the daemon's malloc thresholds are accepted by glibc."""

from __future__ import annotations

import platform

import pytest

from zdps.memory import keep_freed_memory

pytestmark = pytest.mark.timeout(30)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_the_thresholds() -> None:
    assert keep_freed_memory() is True
