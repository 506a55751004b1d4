"""``import zdps`` stays light: the core (and the simulator on it) runs without pyzmq."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import zdps

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]


def test_the_core_imports_without_pyzmq() -> None:
    check = "import sys, zdps.core.node; assert 'zmq' not in sys.modules"
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=50
    )
    assert result.returncode == 0, result.stderr


def test_the_client_names_load_on_first_use() -> None:
    from zdps.client.aio import AsyncClient
    from zdps.client.recovery import Gap
    from zdps.client.sync import Client

    assert (zdps.Client, zdps.AsyncClient, zdps.Gap) == (Client, AsyncClient, Gap)
    assert set(zdps.__all__) <= set(dir(zdps))
    with pytest.raises(AttributeError):
        zdps.NoSuchName  # noqa: B018
