"""``zdps publish``: one message, or each line of stdin, acknowledged at a level."""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Iterator
from typing import Any, BinaryIO

import click

from zdps.client.protocol import FLUSH, STREAM_BATCH, PublishError, PublishResult
from zdps.topics import check_topic
from zdps_cli.options import (
    check_name,
    node_option,
    open_client,
    stopped_by_sigterm,
    timeout_option,
)


@click.command()
@click.argument("topic")
@click.argument("message", required=False)
@click.option(
    "--ack",
    type=click.Choice(["none", "owner", "replicated"]),
    help="Wait until the owner sequenced each message (owner, the default), or until its "
    "replicas stored it too (replicated), or only until the node read it (none).",
)
@click.option("--no-ack", is_flag=True, help="Fire and forget: the same as --ack none.")
@click.option(
    "--file",
    "source",
    type=click.File("rb"),
    help="Publish the bytes of this file as one message (-: all of stdin).",
)
@node_option
@timeout_option
def publish(
    topic: str,
    message: str | None,
    ack: str | None,
    no_ack: bool,
    source: BinaryIO | None,
    node: str,
    timeout: float,
) -> None:
    """Publish MESSAGE to TOPIC, or every line of stdin as one message each, or a
    whole file (--file) as one message.

    Exits 0 only when every message was acknowledged at the --ack level; with --no-ack,
    only when the node confirmed it read them all (within --timeout). Lines of stdin
    are published as raw bytes, without their line ending. Interrupted (Ctrl-C,
    SIGTERM), it says how many lines it read and how many were acknowledged.
    """
    check_name(check_topic, topic)
    if no_ack and ack not in (None, "none"):
        raise click.UsageError(f"--no-ack contradicts --ack {ack}")
    if message is not None and source is not None:
        raise click.UsageError("give MESSAGE or --file, not both")
    level = "none" if no_ack else ack or "owner"
    stdin = _StdinLines(topic) if message is None and source is None else None
    if source is not None:
        messages: Any = [(topic, source.read())]
    elif stdin is None:  # MESSAGE goes out as the bytes it was given (not necessarily UTF-8)
        messages = [(topic, os.fsencode(message))]
    else:
        messages = stdin
    tally = _Tally()
    try:
        with stopped_by_sigterm(), open_client(node, timeout) as client:
            for outcome in client.publish_many(messages, ack=level, batch=STREAM_BATCH):
                tally.add(outcome, show_seq=stdin is None)
    except KeyboardInterrupt:
        read = _read(stdin)
        click.echo(
            f"zdps publish: interrupted: read {read} message(s): {tally.acked} acknowledged, "
            f"{tally.failed} failed, {read - tally.acked - tally.failed} not confirmed",
            err=True,
        )
        sys.exit(130)
    failed, acked = tally.failed, tally.acked
    if failed > MAX_SHOWN_FAILURES:
        click.echo(f"zdps publish: ({failed - MAX_SHOWN_FAILURES} more failures)", err=True)
    if stdin is not None and not stdin.exhausted:
        raise click.ClickException(
            f"node {node} unreachable: stopped reading stdin after {stdin.count} line(s), "
            f"{failed} failed, {acked} acknowledged"
        )
    if failed and level == "none":
        raise click.ClickException(
            f"{failed} of {_read(stdin)} message(s) not confirmed as read by the node"
        )
    if failed:
        raise click.ClickException(f"{failed} message(s) not acknowledged, {acked} acknowledged")


MAX_SHOWN_FAILURES = 10  # failures printed one by one by publish; the rest are counted
READ_SIZE = 1 << 16  # bytes read from stdin at a time


def _read(stdin: _StdinLines | None) -> int:
    return 1 if stdin is None else stdin.count


class _Tally:
    """Outcomes so far: failures shown (the first few) and counted, acks counted."""

    def __init__(self) -> None:
        self.acked = self.failed = 0

    def add(self, outcome: PublishResult | PublishError, show_seq: bool) -> None:
        if isinstance(outcome, PublishError):
            self.failed += 1
            if self.failed <= MAX_SHOWN_FAILURES:
                click.echo(f"zdps publish: {outcome}", err=True)
            return
        self.acked += 1
        if show_seq:
            click.echo(f"seq={outcome.seq} nodes={outcome.nodes} subscribers={outcome.subscribers}")


class _StdinLines:
    """Lines of stdin as bytes, without "\n" or "\r\n", as messages to ``topic``; notes
    when stdin is used up.

    What stdin already holds goes out in batches: the lines of each read as one run
    (``(topic, [line, ...])``: no work per line), and before a read that would wait a
    ``FLUSH``, so the lines read so far leave at once rather than behind it.
    """

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.count = 0  # lines read
        self.exhausted = False

    def __iter__(self) -> Iterator[Any]:
        fd = sys.stdin.fileno()
        rest = b""
        while True:
            if not select.select([fd], [], [], 0)[0]:
                yield FLUSH
            chunk = os.read(fd, READ_SIZE)
            if not chunk:
                break
            data = rest + chunk
            lines = data.split(b"\n")
            rest = lines.pop()
            self.count += len(lines)
            if b"\r" in data:
                lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
            if lines:
                yield self.topic, lines
        if rest:  # a last line without its line ending
            self.count += 1
            yield self.topic, rest
        self.exhausted = True
