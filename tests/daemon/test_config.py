"""Configuration loading: precedence, checks, and clear errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from zdps.core.tunables import CoreConfig
from zdps.daemon.config import DEFAULT_API, ConfigError, core_config, gather, load, problems
from zdps.endpoints import connectable
from zdps.settings import BY_NAME

pytestmark = pytest.mark.timeout(10)


def test_defaults_are_a_single_loopback_node() -> None:
    config = load(None, {})
    assert config.cluster.startswith("tcp://127.0.0.1:")
    assert config.api == DEFAULT_API
    assert config.seeds == []
    assert config.advertised == config.cluster
    assert config.peer_timeout <= 3.0
    assert (config.probe_interval, config.probe_timeout, config.indirect_probes) == (0.2, 0.1, 3)
    assert (config.suspicion_mult, config.suspicion_max_mult) == (3.0, 4.0)


def test_flags_beat_the_file_which_beats_defaults(tmp_path: Path) -> None:
    path = tmp_path / "zdps.toml"
    path.write_text(
        'node_id = "from-file"\nscope = "file-scope"\nseeds = ["tcp://10.0.0.1:7710"]\n'
    )
    config = load(path, {"node_id": "from-flag", "scope": None, "seeds": ()})
    assert (config.node_id, config.scope) == ("from-flag", "file-scope")
    assert config.seeds == ["tcp://10.0.0.1:7710"]


def test_the_example_config_is_valid() -> None:
    config = load(Path(__file__).parents[2] / "conf" / "zdps.toml", {})
    assert config.node_id == socket.gethostname()  # node_id is commented out there


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"cluster": "127.0.0.1:7710"}, "not an endpoint"),
        ({"api": "tcp://127.0.0.1:70000"}, "outside 1-65535"),
        ({"cluster": "tcp://*:7710"}, "advertise"),
        ({"log_level": "loud"}, "log_level"),
        ({"peer_timeout": 0.3}, "peer_timeout"),
        ({"max_payload": 0}, "max_payload"),
        ({"max_payload": 1.5}, "whole number"),
        ({"heartbeat_interval": "fast"}, "must be a number"),
        ({"seeds": [1]}, "seeds"),
        ({"node_id": ""}, "node_id"),
        ({"colour": "blue"}, "unknown configuration key(s): colour"),
        ({"heartbeat_interval": float("nan")}, "finite"),
        ({"peer_timeout": float("inf")}, "finite"),
        ({"probe_timeout": 0.2}, "probe_timeout must be positive and shorter than probe_interval"),
        ({"probe_interval": float("nan")}, "probe_interval must be a finite"),
        ({"indirect_probes": -1}, "indirect_probes"),
        ({"indirect_probes": 1.5}, "whole number"),
        ({"suspicion_mult": 0.5}, "suspicion_mult must be 1 to 1000"),
        ({"suspicion_max_mult": 0}, "suspicion_max_mult must be 1 to 1000"),
        ({"max_payload": 1 << 30}, "max_payload must be 1 to"),
        ({"seeds": ["tcp://127.0.0.1:*"]}, "must name a host and port"),
        ({"seeds": ["tcp://0.0.0.0:7710"]}, "must name a host and port"),
        ({"pub_hwm": -1}, "pub_hwm must be 0 to"),
        ({"pub_hwm": 2**31}, "pub_hwm must be 0 to 2147483647 messages"),  # a C int in libzmq
        ({"max_payload": float("nan")}, "max_payload must be a whole number"),
        ({"history": float("inf")}, "history must be a whole number"),
        ({"history_ttl": 0}, "history_ttl must be over 0 and at most 31536000 s"),
        ({"scope": ""}, "scope must be at least 1 printable character"),
        ({"node_id": "a\tb"}, "node_id must be 1 to 128 printable characters"),
        ({"log_level": 3}, "log_level must be a string"),
    ],
)
def test_bad_values_are_refused_with_the_key_named(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load(None, values)


def test_wildcard_bind_with_advertise_is_fine() -> None:
    config = load(None, {"cluster": "tcp://0.0.0.0:7710", "advertise": "tcp://10.1.2.3:7710"})
    assert config.advertised == "tcp://10.1.2.3:7710"


def test_clients_dial_a_concrete_host_for_wildcard_binds() -> None:
    assert connectable("tcp://0.0.0.0:7712", "10.1.2.3") == "tcp://10.1.2.3:7712"
    assert connectable("tcp://127.0.0.1:7712", "10.1.2.3") == "tcp://127.0.0.1:7712"


def test_the_cores_get_every_setting_they_have_a_field_for() -> None:
    given = {
        "heartbeat_interval": 0.3,
        "peer_timeout": 5.0,
        "probe_interval": 0.5,
        "probe_timeout": 0.25,
        "indirect_probes": 2,
        "suspicion_mult": 5.0,
        "suspicion_max_mult": 6.0,
        "max_payload": 1000,
        "history": 10,
        "history_ttl": 60.0,
        "replicas": 2,
    }
    core = core_config(load(None, given))
    assert {name: getattr(core, name) for name in given} == given
    assert core.flow_window == CoreConfig().flow_window  # not a setting: the core's own


# ---------------------------------------------------------------- CURVE (§2.1)


@pytest.fixture
def curve_dir(tmp_path: Path) -> Path:
    """Keys of nodes a and b (each in its own directory) and an allow-list of both."""
    from zdps.keys import generate

    (tmp_path / "peers").mkdir()
    for name in "ab":
        public, _ = generate(tmp_path / name, name)
        (tmp_path / "peers" / public.name).write_bytes(public.read_bytes())
    return tmp_path


def curve(directory: Path, node: str = "a", **more: object) -> dict[str, object]:
    return {
        "curve_secret_key": str(directory / node / f"{node}.key_secret"),
        "curve_peers": str(directory / "peers"),
        **more,
    }


def test_with_curve_the_node_id_is_its_keys_name_and_seeds_name_their_node(
    curve_dir: Path,
) -> None:
    config = load(None, curve(curve_dir, seeds=["b@tcp://127.0.0.1:7720", "a@tcp://10.0.0.1:7710"]))
    assert config.curve and config.node_id == "a"
    assert config.seed_endpoints == ["tcp://127.0.0.1:7720", "tcp://10.0.0.1:7710"]
    assert config.seed_nodes == {"tcp://127.0.0.1:7720": "b", "tcp://10.0.0.1:7710": "a"}
    assert config.keys().server_key("b") is not None


def test_without_curve_a_seed_may_name_its_node_or_not() -> None:
    config = load(None, {"seeds": ["tcp://127.0.0.1:7720", "b@tcp://127.0.0.1:7730"]})
    assert not config.curve
    assert config.seed_endpoints == ["tcp://127.0.0.1:7720", "tcp://127.0.0.1:7730"]
    assert config.seed_nodes == {"tcp://127.0.0.1:7730": "b"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"curve_peers": None}, "go together"),
        ({"curve_secret_key": None}, "go together"),
        ({"seeds": ["tcp://127.0.0.1:7720"]}, "NAME@ENDPOINT"),
        ({"node_id": "b"}, "not the node named in its key"),
        ({"curve_secret_key": "/nonexistent/a.key_secret"}, "cannot read key file"),
        ({"curve_peers": "/nonexistent"}, "not a directory"),
        ({"seeds": ["b@tcp://*:7720"]}, "must name a host and port"),
    ],
)
def test_curve_settings_that_cannot_work_are_refused(
    curve_dir: Path, change: dict[str, object], message: str
) -> None:
    values = {k: v for k, v in {**curve(curve_dir), **change}.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        load(None, values)


def test_the_public_key_file_is_not_a_secret_key(curve_dir: Path) -> None:
    values = curve(curve_dir, curve_secret_key=str(curve_dir / "a" / "a.key"))
    with pytest.raises(ConfigError, match="no secret key"):
        load(None, values)


def test_a_flag_beats_the_environment_which_beats_the_file_which_beats_the_default(
    tmp_path: Path,
) -> None:
    path = tmp_path / "zdps.toml"
    path.write_text('scope = "from-file"\npub_hwm = 10\nhistory = 7\n')
    env = {
        "ZDPS_PUB_HWM": "20",
        "ZDPS_HISTORY": "8",
        "ZDPS_SEEDS": "tcp://127.0.0.1:1, tcp://127.0.0.1:2",
    }
    sources = gather(path, {"history": 9}, env)[1]
    config = load(path, {"history": 9}, env)
    assert (config.scope, config.pub_hwm, config.history) == ("from-file", 20, 9)
    assert config.seeds == ["tcp://127.0.0.1:1", "tcp://127.0.0.1:2"]
    assert sources == {
        "scope": f"file {path}",
        "pub_hwm": "environment ZDPS_PUB_HWM",
        "history": "flag --history",
        "seeds": "environment ZDPS_SEEDS",
    }
    assert load(None, {}, {}).pub_hwm == BY_NAME["pub_hwm"].default


def test_config_check_reports_every_bad_value_with_its_key(tmp_path: Path) -> None:
    path = tmp_path / "zdps.toml"
    path.write_text('heartbeat_interval = -1\npub_hwm = "lots"\nlog_level = "loud"\n')
    found = problems(path, {}, {"ZDPS_HISTORY": "many"})
    assert len(found) == 4, found
    for key in ("heartbeat_interval", "pub_hwm", "log_level", "history"):
        assert any(problem.startswith(key) for problem in found), (key, found)
    path.write_text('colour = "blue"\n')
    assert problems(path, {}, {}) == [f"{path}: unknown configuration key(s): colour"]
    path.write_text("peer_timeout = 0.1\n")  # fine alone, not with the heartbeat interval
    assert problems(path, {}, {}) == ["peer_timeout must be at least 3 heartbeat intervals"]
    assert problems(Path(__file__).parents[2] / "conf" / "zdps.toml", {}, {}) == []


@pytest.mark.parametrize("node", ["a", "b", "c"])
def test_the_three_node_example_passes_config_check(node: str) -> None:
    path = Path(__file__).parents[2] / "conf" / "three-nodes" / f"{node}.toml"
    assert problems(path, {}, {}) == []
    assert load(path, {}, {}).node_id == node


def test_the_gateway_table_is_left_to_zdps_gateway(tmp_path: Path) -> None:
    path = tmp_path / "zdps.toml"
    path.write_text('node_id = "a"\n[gateway]\nlisten = "127.0.0.1:4000"\n')
    assert load(path, {}).node_id == "a"
    path.write_text('node_id = "a"\n[gatway]\nlisten = "127.0.0.1:4000"\n')
    with pytest.raises(ConfigError, match=r"unknown configuration key.*gatway"):
        load(path, {})
