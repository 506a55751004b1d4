"""The ``zdps`` command: run a node, publish, subscribe, inspect.

Each command is a module of this package; this one only makes the group.
"""

from __future__ import annotations

import click

from zdps import __version__
from zdps_cli.bench import bench
from zdps_cli.publish import publish
from zdps_cli.run import start
from zdps_cli.show import members, status
from zdps_cli.subscribe import subscribe
from zdps_cli.topic import topic


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zdps")
def cli() -> None:
    """zdps: a peer-to-peer cluster of ZeroMQ daemons that routes messages by topic."""


for command in (start, publish, subscribe, status, members, bench, topic):
    cli.add_command(command)

__all__ = ["cli", "start"]
