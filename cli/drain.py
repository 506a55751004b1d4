"""``zdps drain``: the node hands its history over and leaves (docs/PROTOCOL.md §4.5)."""

from __future__ import annotations

import click

from zdps.wire.api import MAX_DRAIN_TIMEOUT
from zdps_cli.options import call, node_option, open_client


@click.command()
@node_option
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, max=MAX_DRAIN_TIMEOUT, min_open=True),
    help="Seconds the drain may take at most.  [default: the node's drain_timeout]",
)
def drain(node: str, timeout: float | None) -> None:
    """Drain the node, then let it leave: it refuses publishes (draining), hands the
    history it holds to the nodes that take its topics over, and exits once they
    confirmed it or the time is up. Exits 1 if some node did not confirm in time.

    Under systemd, `systemctl stop` or `restart` drains too (SIGTERM).
    """
    with open_client(node, 10.0) as client:
        report = call(client.drain, timeout)
    click.echo(
        f"drained in {report['took_s']:.2f}s: the history of {report['topics']} topic(s), "
        f"{report['messages']} message(s), went to {report['to']} node(s)"
    )
    if report["unconfirmed"]:
        raise click.ClickException(
            f"not confirmed in time by {', '.join(report['unconfirmed'])}: they may lack "
            "part of that history (their peers hand it on as the ring changes)"
        )
