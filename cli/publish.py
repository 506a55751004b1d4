"""``zdps publish``: one message, or each line of stdin, acknowledged at a level."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import click

from zdps.client.protocol import PublishError
from zdps.topics import check_topic
from zdps_cli.options import check_name, node_option, open_client, timeout_option


@click.command()
@click.argument("topic")
@click.argument("message", required=False)
@click.option(
    "--ack",
    type=click.Choice(["none", "owner", "replicated"]),
    default="owner",
    show_default=True,
    help="Wait until the owner sequenced each message, or until its replicas stored it too.",
)
@click.option("--no-ack", is_flag=True, help="Fire and forget: the same as --ack none.")
@node_option
@timeout_option
def publish(
    topic: str, message: str | None, ack: str, no_ack: bool, node: str, timeout: float
) -> None:
    """Publish MESSAGE to TOPIC, or every line of stdin as one message each.

    Exits 0 only when every message was acknowledged at the --ack level. Lines of
    stdin are published as raw bytes, without their line ending.
    """
    check_name(check_topic, topic)
    # A MESSAGE argument goes out as the bytes it was given (not necessarily UTF-8).
    stdin = _StdinLines() if message is None else None
    lines: Any = [os.fsencode(message)] if stdin is None else stdin
    with open_client(node, timeout) as client:
        failed = acked = 0
        level = "none" if no_ack else ack
        for outcome in client.publish_many(((topic, m) for m in lines), ack=level):
            if isinstance(outcome, PublishError):
                failed += 1
                if failed <= MAX_SHOWN_FAILURES:
                    click.echo(f"zdps publish: {outcome}", err=True)
            else:
                acked += 1
                if message is not None:
                    click.echo(
                        f"seq={outcome.seq} nodes={outcome.nodes} subscribers={outcome.subscribers}"
                    )
    if failed > MAX_SHOWN_FAILURES:
        click.echo(f"zdps publish: ({failed - MAX_SHOWN_FAILURES} more failures)", err=True)
    if stdin is not None and not stdin.exhausted:
        raise click.ClickException(
            f"node {node} unreachable: stopped reading stdin after {stdin.count} line(s), "
            f"{failed} failed, {acked} acknowledged"
        )
    if failed:
        verb = "sent" if no_ack else "acknowledged"
        raise click.ClickException(f"{failed} message(s) not {verb}, {acked} acknowledged")


MAX_SHOWN_FAILURES = 10  # failures printed one by one by publish; the rest are counted


class _StdinLines:
    """Lines of stdin as bytes, without "\n" or "\r\n"; notes when stdin is used up."""

    def __init__(self) -> None:
        self.count = 0
        self.exhausted = False

    def __iter__(self) -> Iterator[bytes]:
        for line in sys.stdin.buffer:
            self.count += 1
            if line.endswith(b"\n"):
                line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
            yield line
        self.exhausted = True
