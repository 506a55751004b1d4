"""``zdps config check`` and ``zdps config show`` as an operator runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cluster.harness import Cluster

pytestmark = pytest.mark.timeout(60)

EXAMPLE = Path(__file__).parents[2] / "conf" / "zdps.toml"


def test_check_lists_every_problem_and_exits_1(cluster: Cluster) -> None:
    bad = cluster.workdir / "bad.toml"
    bad.write_text('heartbeat_interval = -1\npub_hwm = "lots"\n')
    done = cluster.run("config", "check", str(bad))
    assert done.returncode == 1
    assert "heartbeat_interval must be" in done.stderr and "pub_hwm must be" in done.stderr
    good = cluster.run("config", "check", str(EXAMPLE))
    assert good.returncode == 0 and good.stdout.endswith("ok\n")


def test_show_says_where_each_setting_came_from(cluster: Cluster) -> None:
    done = cluster.run("config", "show", "--config", str(EXAMPLE), "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["pub_hwm"] == {"value": 100000, "source": f"file {EXAMPLE}"}
    assert shown["node_id"]["source"] == "computed"  # the host name
    assert shown["advertise"] == {"value": None, "source": "default"}
