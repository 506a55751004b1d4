"""``zdps topic create`` and ``zdps topic delete``."""

from __future__ import annotations

import click

from zdps.topics import check_topic
from zdps_cli.options import (
    call,
    check_name,
    group_node_option,
    group_timeout_option,
    node_option,
    open_client,
    timeout_option,
)


@click.group()
@group_node_option
@group_timeout_option
def topic(node: str | None, timeout: float | None) -> None:
    """Manage topics (topics exist implicitly; `create` only sets their retention)."""


@topic.command("create")
@click.argument("name")
@click.option(
    "--history",
    type=click.IntRange(min=0),
    required=True,
    help="Messages kept for recovery and --since (0: none).",
)
@click.option(
    "--ttl",
    type=click.FloatRange(min=0, min_open=True),
    required=True,
    help="Seconds a message stays in history.",
)
@node_option
@timeout_option
def topic_create(name: str, history: int, ttl: float, node: str, timeout: float) -> None:
    """Set NAME's history retention (kept by its owner and replicas, across owner changes)."""
    check_name(check_topic, name)
    with open_client(node, timeout) as client:
        call(client.create_topic, name, history, ttl)
    click.echo(f"topic {name}: history {history} message(s), ttl {ttl:g} s")


@topic.command("delete")
@click.argument("name")
@node_option
@timeout_option
def topic_delete(name: str, node: str, timeout: float) -> None:
    """Send a final 'closed' message to every subscriber of NAME, ending their subscriptions."""
    check_name(check_topic, name)
    with open_client(node, timeout) as client:
        result = call(client.delete_topic, name)
    click.echo(
        f"deleted {name}: closed sent to {result.nodes} node(s), {result.subscribers} subscriber(s)"
    )
