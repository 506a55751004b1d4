"""The ``zdps`` command: run a node, publish, subscribe, inspect.

Each command is a module of this package; this one only makes the group.
"""

from __future__ import annotations

import os

import click

from zdps import __version__
from zdps.keys import ENV_CURVE_KEY, ENV_SERVER_KEY
from zdps_cli.bench import bench
from zdps_cli.config import config
from zdps_cli.consumer import consume, consumer
from zdps_cli.drain import drain
from zdps_cli.gateway import gateway
from zdps_cli.keygen import keygen
from zdps_cli.options import group_node_option, group_timeout_option
from zdps_cli.publish import publish
from zdps_cli.run import start
from zdps_cli.show import members, status
from zdps_cli.subscribe import subscribe
from zdps_cli.topic import topic

JSON_COMMANDS = ("status", "members", "subscribe", "bench")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zdps")
@group_node_option
@group_timeout_option
@click.option("--json", "as_json", is_flag=True, help=f"--json for {', '.join(JSON_COMMANDS)}.")
@click.option(
    "--curve-key",
    type=click.Path(dir_okay=False),
    help=f"This client's CURVE secret key file (curve_clients).  [default: ${ENV_CURVE_KEY}]",
)
@click.option(
    "--server-key",
    type=click.Path(dir_okay=False),
    help=f"The node's CURVE public key file (NAME.key).  [default: ${ENV_SERVER_KEY}]",
)
@click.pass_context
def cli(
    ctx: click.Context,
    node: str | None,
    timeout: float | None,
    as_json: bool,
    curve_key: str | None,
    server_key: str | None,
) -> None:
    """zdps: a peer-to-peer cluster of ZeroMQ daemons that routes messages by topic.

    --node, --timeout and --json given here are the defaults of the command that follows.
    --curve-key and --server-key make every client of the command speak CURVE.
    """
    for name, value in ((ENV_CURVE_KEY, curve_key), (ENV_SERVER_KEY, server_key)):
        if value is not None:
            os.environ[name] = value  # read by every client (zdps.keys.client_keys)
    command = ctx.invoked_subcommand
    if command == "start" and (node or timeout):
        raise click.UsageError("zdps start binds --api; --node and --timeout are for clients")
    if as_json and command not in JSON_COMMANDS:
        raise click.UsageError(f"--json is for {', '.join(JSON_COMMANDS)}, not {command}")


for command in (
    start,
    publish,
    subscribe,
    status,
    members,
    bench,
    topic,
    consumer,
    consume,
    keygen,
    config,
    drain,
    gateway,
):
    cli.add_command(command)

__all__ = ["cli", "start"]
