"""zdps.settings is the one definition of every setting; everything else agrees with it.

The flags of ``zdps start``, the Config and CoreConfig defaults, conf/zdps.toml, the
README's ``zdps start`` row and the settings table of docs/PROTOCOL.md §4.4 are checked
against it here, and its bounds are checked to be enforced with the key named.
``ZDPS_UPDATE_DOCS=1`` rewrites the generated table instead of failing on it.
"""

from __future__ import annotations

import ast
import fnmatch
import math
import os
import re
import socket
import tomllib
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from zdps.core.tunables import CoreConfig
from zdps.daemon.config import Config, ConfigError, load
from zdps.setting import Setting
from zdps.settings import BY_NAME, SETTINGS, markdown_table
from zdps_cli.main import cli, start

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).parents[1]
CONF = ROOT / "conf" / "zdps.toml"
README = ROOT / "README.md"
PROTOCOL = ROOT / "docs" / "PROTOCOL.md"
START, END = "<!-- settings:start -->\n", "<!-- settings:end -->"
# The configurable rows of the timing table in docs/PROTOCOL.md §4.4, in its order.
TIMING = (
    "heartbeat_interval",
    "ping_fanout",
    "probe_interval",
    "probe_timeout",
    "indirect_probes",
    "suspicion_mult",
    "suspicion_max_mult",
    "peer_timeout",
)
NAMES = [setting.name for setting in SETTINGS]
PATHS = ("curve_secret_key", "curve_peers", "curve_clients", "permissions")  # on the host
NUMBERS = [setting for setting in SETTINGS if setting.type in (int, float)]


@pytest.mark.parametrize("module", ["settings.py", "setting.py"])
def test_settings_import_neither_pyzmq_nor_the_daemon(module: str) -> None:
    tree = ast.parse((ROOT / "zdps" / module).read_text())
    modules = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    modules += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in modules if m.startswith(("zmq", "zdps.daemon"))]


@pytest.mark.parametrize("setting", SETTINGS, ids=NAMES)
def test_each_setting_has_a_one_line_help_and_a_valid_default(setting: Setting) -> None:
    assert re.fullmatch(r"[a-z]+(_[a-z]+)*", setting.name)
    assert setting.help[0].isupper() and setting.help.endswith(".")
    assert "\n" not in setting.help and len(setting.help) <= 160
    assert setting.parse(setting.default_value()) == setting.default_value()
    assert setting.shown_default


def test_config_has_one_field_per_setting_with_its_type_and_default() -> None:
    assert [f.name for f in fields(Config)] == NAMES
    hints = typing.get_type_hints(Config)
    config = Config()
    for setting in SETTINGS:
        hint = hints[setting.name]
        assert setting.type in (hint, typing.get_origin(hint), *typing.get_args(hint))
        expected = socket.gethostname() if setting.factory else setting.default_value()
        assert getattr(config, setting.name) == expected, setting.name


def test_core_config_defaults_are_the_settings() -> None:
    shared = [f for f in fields(CoreConfig) if f.name in BY_NAME]
    assert {f.name for f in shared} >= set(TIMING) | {"max_payload", "history", "replicas"}
    for f in shared:
        assert f.default == BY_NAME[f.name].default, f.name


def test_start_has_one_flag_per_setting_with_its_help_and_default() -> None:
    options = {p.name: p for p in start.params if isinstance(p, click.Option)}
    assert sorted(options) == sorted(["config_path", *NAMES])
    for setting in SETTINGS:
        option = options[setting.name]
        assert option.opts == [setting.flag]
        assert option.multiple == (setting.type is list)
        if setting.choices:
            assert isinstance(option.type, click.Choice)
            assert tuple(option.type.choices) == setting.choices
        else:
            expected = {int: click.INT, float: click.FLOAT}.get(setting.type, click.STRING)
            assert option.type == expected, setting.name
        assert setting.help in (option.help or "")
        assert f"[default: {setting.shown_default}" in (option.help or "")
    assert BY_NAME["seeds"].flag == "--seed" and BY_NAME["pub_hwm"].flag == "--pub-hwm"


def test_flags_not_given_reach_load_as_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    import zdps.daemon.config

    given: list[dict[str, Any]] = []

    def fake_load(path: Path | None, overrides: dict[str, Any]) -> Config:
        given.append(overrides)
        raise ConfigError("stop here")

    monkeypatch.setattr(zdps.daemon.config, "load", fake_load)
    result = CliRunner().invoke(cli, ["start", "--pub-hwm", "10"])
    assert result.exit_code == 2 and "stop here" in result.output
    unset = {name: () if BY_NAME[name].type is list else None for name in NAMES}
    assert given == [{**unset, "pub_hwm": 10}]


def test_start_help_lists_every_flag() -> None:
    result = CliRunner().invoke(cli, ["start", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for setting in SETTINGS:
        assert f"  {setting.flag} " in result.output, setting.flag


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[Config]:
    """The configs ``zdps start`` would run a daemon with; none is run."""
    import zdps.daemon.loop

    configs: list[Config] = []

    class FakeNode:
        def __init__(self, config: Config) -> None:
            configs.append(config)

        def run(self) -> int:
            return 0

    monkeypatch.setattr(zdps.daemon.loop, "Daemon", FakeNode)
    return configs


def test_given_flags_beat_the_file_and_reach_the_node(
    tmp_path: Path, started: list[Config]
) -> None:
    path = tmp_path / "zdps.toml"
    path.write_text("pub_hwm = 5\nhistory = 7\nseeds = ['tcp://10.0.0.9:7710']\n")
    args = ["start", "--config", str(path), "--pub-hwm", "10", "--log-level", "debug"]
    args += ["--seed", "tcp://10.0.0.1:7710", "--seed", "tcp://10.0.0.2:7710"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    (config,) = started
    assert (config.pub_hwm, config.history, config.log_level) == (10, 7, "debug")
    assert config.seeds == ["tcp://10.0.0.1:7710", "tcp://10.0.0.2:7710"]
    assert config.replicas == BY_NAME["replicas"].default


def _outside(setting: Setting) -> list[float]:
    """Values just past each bound of ``setting``."""
    values = []
    if setting.min is not None:
        values.append(setting.min if setting.min_open else setting.min - 1)
    if setting.max is not None:
        values.append(setting.max if setting.max_open else setting.max + 1)
    return values


@pytest.mark.parametrize(
    ("setting", "value"),
    [(s, v) for s in NUMBERS for v in _outside(s)],
    ids=[f"{s.name}={v}" for s in NUMBERS for v in _outside(s)],
)
def test_a_flag_out_of_bounds_is_refused_naming_the_key(setting: Setting, value: float) -> None:
    result = CliRunner().invoke(cli, ["start", f"{setting.flag}={value}"])
    assert result.exit_code == 2
    assert f"{setting.name} must be {setting.bounds}" in result.output


def _accepted(setting: Setting, value: float) -> bool:
    """The bounds of ``setting``, restated plainly."""
    if not math.isfinite(value) or (setting.type is int and value != int(value)):
        return False
    lo, hi = setting.min, setting.max
    above = lo is None or value > lo or (value == lo and not setting.min_open)
    below = hi is None or value < hi or (value == hi and not setting.max_open)
    return above and below


@st.composite
def numbers(draw: st.DrawFn) -> tuple[Setting, float]:
    """A numeric setting and a value, often at or next to one of its bounds."""
    setting = draw(st.sampled_from(NUMBERS))
    bounds = [b for b in (setting.min, setting.max) if b is not None]
    near = [b + d for b in bounds for d in (-1, -0.5, 0, 0.5, 1)]
    near += [math.nextafter(b, math.inf * d) for b in bounds for d in (-1, 1)]
    value = draw(st.sampled_from(near) | st.integers(-(2**40), 2**40) | st.floats() | st.just(-0.0))
    return setting, value


@given(numbers())
def test_numbers_are_refused_outside_their_bounds_with_the_key_named(
    case: tuple[Setting, float],
) -> None:
    setting, value = case
    if _accepted(setting, value):
        parsed = setting.parse(value)
        assert parsed == value and type(parsed) is setting.type
    else:
        with pytest.raises(ConfigError, match=f"^{setting.name} must be "):
            load(None, {setting.name: value})


@given(st.text(max_size=200))
def test_node_ids_are_1_to_128_printable_characters(name: str) -> None:
    if 1 <= len(name) <= 128 and name.isprintable():
        assert load(None, {"node_id": name}).node_id == name
    else:
        with pytest.raises(ConfigError, match=r"^node_id must be 1 to 128 printable characters$"):
            load(None, {"node_id": name})


# ---------------------------------------------------------------------- conf/zdps.toml


def _key_line(line: str) -> tuple[str, Any, bool, str] | None:
    """(key, value, commented out, inline comment) if ``line`` sets a key, else None."""
    commented = line.startswith("#")
    text = line.lstrip("# ") if commented else line
    try:
        ((key, value),) = tomllib.loads(text).items()
    except ValueError:  # prose, or not one key
        return None
    return key, value, commented, text.partition("#")[2] if "#" in text else ""


def _conf_entries() -> list[tuple[str, Any, bool, str]]:
    """Each key line of conf/zdps.toml with its comment: the lines above it, and inline."""
    lines = CONF.read_text().splitlines()
    parsed = [_key_line(line) for line in lines]
    entries = []
    for i, entry in enumerate(parsed):
        if entry is None:
            continue
        key, value, commented, inline = entry
        first = i
        while first > 0 and lines[first - 1].startswith("#") and parsed[first - 1] is None:
            first -= 1
        comment = " ".join([*(line.lstrip("#") for line in lines[first:i]), inline])
        entries.append((key, value, commented, " ".join(comment.split())))
    return entries


def test_the_example_config_names_every_setting_in_order() -> None:
    keys = [key for key, *_ in _conf_entries()]
    assert list(dict.fromkeys(keys)) == NAMES  # SETTINGS is in the file's order


def test_the_example_config_sets_defaults_and_valid_examples() -> None:
    for key, value, commented, _ in _conf_entries():
        setting = BY_NAME.get(key)
        assert setting, f"conf/zdps.toml sets {key}, which is not a setting"
        if key in PATHS:  # files of the host it runs on: only shown, never set
            assert commented and isinstance(value, str) and value.startswith("/etc/zdps/"), key
        elif commented or setting.factory:  # an example: any value that works
            assert getattr(load(None, {key: value}), key) == value, key
        else:
            assert value == setting.default_value(), key


def test_each_key_of_the_example_config_carries_its_help() -> None:
    comments: dict[str, str] = {}
    for key, _, _, comment in _conf_entries():
        comments.setdefault(key, comment)
    for setting in SETTINGS:
        assert setting.help in comments[setting.name], setting.name


def _default_line(setting: Setting) -> str:
    """What the example config says of a key's default and bounds, in one line."""
    if setting.bounds:
        return f"Default: {setting.shown_default}; {setting.bounds}."
    return f"Default: {setting.shown_default}; "  # an endpoint, or a list of them


def test_each_key_of_the_example_config_carries_its_default_and_bounds() -> None:
    comments: dict[str, str] = {}
    for key, _, _, comment in _conf_entries():
        comments.setdefault(key, comment)
    for setting in SETTINGS:
        comment = comments[setting.name]
        assert _default_line(setting) in comment, (setting.name, comment)
        if not setting.bounds:  # Config.check decides what an endpoint or a path is
            said = comment.partition(_default_line(setting))[2].split(".")[0]
            what = "a path" if setting.name in PATHS else "endpoint"
            assert said.count(what) == 1, (setting.name, comment)


def test_the_example_config_sets_nothing_computed_per_host() -> None:
    """A key whose default is computed where the node starts (the host name as node_id)
    is only shown commented out, so the file can be copied to every host."""
    computed = {setting.name for setting in SETTINGS if setting.factory}
    assert computed == {"node_id"}
    for key, _, commented, _ in _conf_entries():
        assert commented or key not in computed, f"conf/zdps.toml sets {key} for every host"


def test_the_example_config_works_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No relative path in it: it loads to the defaults wherever zdps starts."""
    paths = re.findall(r"--config (\S+)", CONF.read_text())
    for _, value, _, _ in _conf_entries():
        values = value if isinstance(value, list) else [value]
        paths += [v.removeprefix("ipc://") for v in values if str(v).startswith("ipc://")]
    for path in paths:
        assert path.startswith("/"), f"conf/zdps.toml names the relative path {path}"
    monkeypatch.chdir(tmp_path)
    assert load(CONF, {}) == Config()


@pytest.mark.parametrize("spelling", ["DEBUG", "Debug", "debug"])
def test_the_log_level_is_accepted_in_any_case_from_flag_and_file(
    spelling: str, tmp_path: Path, started: list[Config]
) -> None:
    path = tmp_path / "zdps.toml"
    path.write_text(f'log_level = "{spelling}"\n')
    for args in (["--log-level", spelling], ["--config", str(path)]):
        result = CliRunner().invoke(cli, ["start", *args])
        assert result.exit_code == 0, result.output
    assert [config.log_level for config in started] == ["debug", "debug"]
    result = CliRunner().invoke(cli, ["start", "--log-level", "verbose"])
    assert result.exit_code == 2 and "'verbose' is not one of" in result.output


# ---------------------------------------------------------------------- docs


def test_the_protocol_settings_table_is_generated() -> None:
    text = PROTOCOL.read_text()
    head, start, rest = text.partition(START)
    body, end, tail = rest.partition(END)
    assert start and end, f"{PROTOCOL} lost its settings markers"
    expected = markdown_table(TIMING)
    if os.environ.get("ZDPS_UPDATE_DOCS") == "1" and body != expected:
        PROTOCOL.write_text(head + START + expected + END + tail)
        body = expected
    assert body == expected, "stale settings table: rerun with ZDPS_UPDATE_DOCS=1"
    section = tail.partition("\n### ")[0]  # the rest of §4.4: the fixed timings
    for name in NAMES:
        assert f"`{name}`" not in section, f"{name} is in the generated table"


def test_the_readme_start_row_names_every_flag() -> None:
    row = next(line for line in README.read_text().splitlines() if line.startswith("| `zdps start"))
    flags = [setting.flag for setting in SETTINGS]
    named: set[str] = set()
    for token in re.findall(r"--[a-z][a-z-]*\*?", row):
        if token in ("--config", "--help"):
            continue
        matches = fnmatch.filter(flags, token)
        assert matches, f"README.md names {token}, which is not a zdps start flag"
        named.update(matches)
    assert sorted(named) == sorted(flags), "README.md's zdps start row misses a flag"
