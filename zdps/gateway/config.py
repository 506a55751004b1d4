"""The gateway's settings (docs/GATEWAY.md, "Running it"): defaults, then the
``[gateway]`` table of the node's config file, then ``$ZDPS_NODE`` for ``node``, then
the flags given. ``problems`` lists everything wrong with a table, for ``zdps gateway``
and ``zdps config check`` alike."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zdps.client.protocol import ENV_NODE
from zdps.endpoints import endpoint_problem
from zdps.gateway.limits import Limits
from zdps.gateway.tokens import Tokens
from zdps.settings import DEFAULT_API

TABLE = "gateway"
DEFAULTS: dict[str, Any] = {
    "listen": "127.0.0.1:4000",
    "node": DEFAULT_API,
    "path": "/socket/websocket",
    "max_connections": Limits().max_connections,
    "max_send_buffer": Limits().max_send_buffer,
    "origins": [],
    "tokens": "",
    "idle_timeout": Limits().idle_timeout,
}


def host_port(value: str) -> tuple[str, int] | None:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


def table_of(path: Path) -> dict[str, Any]:
    """The file's ``[gateway]`` table ({} without one); ValueError if it cannot be read."""
    try:
        table = tomllib.loads(path.read_text()).get(TABLE, {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    if not isinstance(table, dict):
        raise ValueError(f"{path}: [{TABLE}] must be a table")
    return table


def problems(settings: Mapping[str, Any]) -> list[str]:
    """Every bad key or value, each with its name and why."""
    found = [f"unknown key {key!r}" for key in settings if key not in DEFAULTS]
    for key, value in settings.items():
        if key in DEFAULTS and type(value) is not type(DEFAULTS[key]):
            found.append(f"{key} must be a {type(DEFAULTS[key]).__name__}")
    if found:
        return found
    if host_port(settings.get("listen", DEFAULTS["listen"])) is None:
        found.append(f"listen {settings['listen']!r} is not HOST:PORT")
    node = settings.get("node", DEFAULTS["node"])
    if (problem := endpoint_problem(node)) is not None:
        found.append(f"node {node!r} {problem}")
    for key in ("max_connections", "max_send_buffer", "idle_timeout"):
        if settings.get(key, 1) < 1:
            found.append(f"{key} must be at least 1")
    if not all(isinstance(origin, str) for origin in settings.get("origins", [])):
        found.append("origins must be a list of text")
    if settings.get("tokens"):
        try:
            Tokens.read(Path(settings["tokens"]))
        except ValueError as exc:
            found.append(f"tokens: {exc}")
    return found


def gateway_settings(
    path: Path | None, flags: Mapping[str, Any], environ: Mapping[str, str] = os.environ
) -> dict[str, Any]:
    """The settings to run with; ValueError naming every problem."""
    settings = dict(DEFAULTS)
    if path is not None:
        table = table_of(path)
        if found := problems(table):
            raise ValueError(f"{path}: [{TABLE}] " + "; ".join(found))
        settings.update(table)
    if environ.get(ENV_NODE):  # as for every command: the environment beats the file
        settings["node"] = environ[ENV_NODE]
    settings.update({key: value for key, value in flags.items() if value not in (None, ())})
    if found := problems(settings):
        raise ValueError("; ".join(found))
    return settings
