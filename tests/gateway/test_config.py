"""The gateway's settings (zdps/gateway/config.py): every problem named, and the order
defaults < [gateway] table < $ZDPS_NODE < flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from zdps.gateway.config import DEFAULTS, gateway_settings, problems

pytestmark = pytest.mark.timeout(30)


# what is said -> a table that says it
SAID = {
    "unknown key 'listn'": {"listn": "a:1"},
    "max_connections must be a int": {"max_connections": "10"},
    "listen '4000' is not HOST:PORT": {"listen": "4000"},
    "node 'localhost'": {"node": "localhost"},
    "max_send_buffer must be at least 1": {"max_send_buffer": 0},
    "idle_timeout must be at least 1": {"idle_timeout": 0},
    "idle_timeout must be a int": {"idle_timeout": 1.5},
    "origins must be a list of text": {"origins": [1]},
    "tokens: /nonexistent/tokens.toml": {"tokens": "/nonexistent/tokens.toml"},
}


def test_each_problem_is_named() -> None:
    for said, table in SAID.items():
        assert any(said in problem for problem in problems(table)), (said, problems(table))


def test_the_defaults_have_no_problem_and_the_order_holds(tmp_path: Path) -> None:
    assert problems(DEFAULTS) == []
    path = tmp_path / "zdps.toml"
    path.write_text('[gateway]\nnode = "tcp://127.0.0.1:1"\nlisten = "127.0.0.1:5000"\n')
    env = {"ZDPS_NODE": "tcp://127.0.0.1:2"}
    got = gateway_settings(path, {"listen": "127.0.0.1:6000", "origins": ()}, env)
    assert (got["node"], got["listen"], got["origins"]) == (
        "tcp://127.0.0.1:2",
        "127.0.0.1:6000",
        [],
    )
    assert gateway_settings(path, {}, {})["node"] == "tcp://127.0.0.1:1"
    path.write_text('[gateway]\nlisten = "x"\n')
    with pytest.raises(ValueError, match=r"\[gateway\] listen 'x' is not HOST:PORT"):
        gateway_settings(path, {}, {})
