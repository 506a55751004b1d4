"""``zdps gateway``: Phoenix Channels V2 WebSocket clients on zdps topics (docs/GATEWAY.md)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import click

from zdps.client.protocol import ENV_NODE
from zdps.gateway.config import DEFAULTS, gateway_settings, host_port
from zdps.gateway.limits import Limits
from zdps.gateway.tokens import Tokens
from zdps.settings import DEFAULT_API


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
    "--idle-timeout", type=click.IntRange(min=1),
    help="Seconds without a frame (the clients' heartbeats) before a socket is closed.  "
    f"[default: {DEFAULTS['idle_timeout']}]",
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

    try:
        settings = gateway_settings(config, flags)
        tokens = Tokens.read(Path(settings["tokens"])) if settings["tokens"] else None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    listen = host_port(settings["listen"])
    assert listen is not None  # gateway_settings checked it
    host, port = listen
    limits = Limits(
        settings["max_connections"], settings["max_send_buffer"], tuple(settings["origins"]),
        tokens, settings["idle_timeout"],
    )  # fmt: skip
    logging.basicConfig(level=logging.INFO, format="%(levelname)s zdps-gateway %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)  # not a line per connection
    try:
        asyncio.run(Gateway(settings["node"], settings["path"], limits).serve(host, port))
    except OSError as exc:  # the port is taken, the host is not ours
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
