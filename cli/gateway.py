"""``zdps gateway``: Phoenix Channels V2 WebSocket clients on zdps topics (docs/GATEWAY.md)."""

from __future__ import annotations

import asyncio
import logging
import os
import tomllib
from pathlib import Path
from typing import Any

import click

from zdps.client.protocol import ENV_NODE
from zdps.endpoints import endpoint_problem
from zdps.gateway.limits import Limits
from zdps.gateway.tokens import Tokens
from zdps.settings import DEFAULT_API

# Each [gateway] key of the config file, with its default: the flags beat the file.
DEFAULTS: dict[str, Any] = {
    "listen": "127.0.0.1:4000",
    "node": DEFAULT_API,
    "path": "/socket/websocket",
    "max_connections": Limits().max_connections,
    "max_send_buffer": Limits().max_send_buffer,
    "origins": [],
    "tokens": "",
}


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{value!r} is not HOST:PORT")
    return host, int(port)


def _settings(config: Path | None, flags: dict[str, Any]) -> dict[str, Any]:
    """The defaults, then the file's [gateway] table, then the flags that were given."""
    settings = dict(DEFAULTS)
    if config is not None:
        try:
            table = tomllib.loads(config.read_text()).get("gateway", {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise click.ClickException(f"{config}: {exc}") from None
        unknown = sorted(set(table) - set(DEFAULTS))
        if unknown:
            raise click.ClickException(f"{config}: unknown [gateway] keys {unknown}")
        for key, value in table.items():
            if type(value) is not type(DEFAULTS[key]):
                kind = type(DEFAULTS[key]).__name__
                raise click.ClickException(f"{config}: [gateway] {key} must be a {kind}")
        settings.update(table)
    if os.environ.get(ENV_NODE):  # as for every command: the environment beats the file
        settings["node"] = os.environ[ENV_NODE]
    settings.update({key: value for key, value in flags.items() if value not in (None, ())})
    problem = endpoint_problem(settings["node"])
    if problem:
        raise click.ClickException(f"node {settings['node']!r} {problem}")
    for key in ("max_connections", "max_send_buffer"):
        if settings[key] < 1:
            raise click.ClickException(f"{key} must be at least 1")
    return settings


@click.command()
@click.option(
    "--config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="TOML file whose [gateway] table sets these options (flags beat it).",
)
@click.option(
    "--listen", help=f"HOST:PORT the WebSocket clients connect to.  [default: {DEFAULTS['listen']}]"
)
@click.option(
    "--node", help=f"The zdps node's API endpoint.  [default: ${ENV_NODE}, else {DEFAULT_API}]"
)
@click.option(
    "--path", help=f"The socket's URL path (clients add ?vsn=2.0.0).  [default: {DEFAULTS['path']}]"
)
@click.option(
    "--max-connections", type=click.IntRange(min=1),
    help=f"WebSockets at once; more get HTTP 503.  [default: {DEFAULTS['max_connections']}]",
)  # fmt: skip
@click.option(
    "--max-send-buffer", type=click.IntRange(min=1),
    help="Bytes queued to one client that does not read before it is dropped (close "
    f"1013).  [default: {DEFAULTS['max_send_buffer']}]",
)  # fmt: skip
@click.option(
    "--origin", "origins", multiple=True,
    help="An Origin header allowed (repeatable); others get HTTP 403.  [default: any]",
)  # fmt: skip
@click.option(
    "--tokens", type=click.Path(dir_okay=False),
    help="TOML file of client tokens and what each may publish and subscribe to "
    "(docs/GATEWAY.md); with it, a connection needs a known token.  [default: none]",
)  # fmt: skip
def gateway(config: Path | None, **flags: Any) -> None:
    """Serve Phoenix Channels V2 WebSocket clients (the npm phoenix client, websocat)
    on the topics of a zdps node: a channel is a topic, its "publish" event with
    [event, body] publishes, and every joined client receives it. GET /status on the
    same port says what the gateway holds and counted."""
    from zdps.gateway.server import Gateway

    settings = _settings(config, flags)
    host, port = _host_port(settings["listen"])
    tokens = None
    if settings["tokens"]:
        try:
            tokens = Tokens.read(Path(settings["tokens"]))
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    limits = Limits(
        settings["max_connections"], settings["max_send_buffer"], tuple(settings["origins"]),
        tokens,
    )  # fmt: skip
    logging.basicConfig(level=logging.INFO, format="%(levelname)s zdps-gateway %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)  # not a line per connection
    try:
        asyncio.run(Gateway(settings["node"], settings["path"], limits).serve(host, port))
    except OSError as exc:  # the port is taken, the host is not ours
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
