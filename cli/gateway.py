"""``zdps gateway``: Phoenix Channels V2 WebSocket clients on zdps topics (docs/GATEWAY.md)."""

from __future__ import annotations

import asyncio
import logging

import click

from zdps_cli.options import node_option, stopped_by_sigterm


def _listen(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{value!r} is not HOST:PORT")
    return host, int(port)


@click.command()
@click.option(
    "--listen",
    default="127.0.0.1:4000",
    show_default=True,
    callback=_listen,
    help="HOST:PORT the WebSocket clients connect to.",
)
@node_option
@click.option(
    "--path",
    default="/socket/websocket",
    show_default=True,
    help="The socket's URL path (clients add ?vsn=2.0.0).",
)
def gateway(listen: tuple[str, int], node: str, path: str) -> None:
    """Serve Phoenix Channels V2 WebSocket clients (the npm phoenix client, websocat)
    on the topics of the zdps node at --node: a channel is a topic, its "publish"
    event with [event, body] publishes, and every joined client receives it."""
    from zdps.gateway.server import Gateway

    logging.basicConfig(level=logging.INFO, format="%(levelname)s zdps-gateway %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)  # not a line per connection
    try:
        with stopped_by_sigterm():
            asyncio.run(Gateway(node, path).serve(*listen))
    except KeyboardInterrupt:
        pass
    except OSError as exc:  # the port is taken, the host is not ours
        raise click.ClickException(f"cannot listen on {listen[0]}:{listen[1]}: {exc}") from None
