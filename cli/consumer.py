"""``zdps consumer create|ls|info|delete`` and ``zdps consume``: durable consumers."""

from __future__ import annotations

import json
from typing import Any

import click

from zdps.topics import check_queue_name, check_topic
from zdps.wire.consumers import (
    DEFAULT_ACK_WAIT,
    DEFAULT_MAX_DELIVER,
    DEFAULT_MAX_PENDING,
    MAX_ACK_WAIT,
    MAX_DELIVER,
    MAX_PENDING,
)
from zdps_cli.lines import escape
from zdps_cli.options import (
    call,
    check_name,
    group_node_option,
    group_timeout_option,
    json_option,
    node_option,
    open_client,
    stdout_gone,
    stopped_by_sigterm,
    timeout_option,
)


def _start(value: str) -> str | int:
    if value in ("new", "all"):
        return value
    try:
        seq = int(value)
    except ValueError:
        raise click.BadParameter('"new", "all" or a seq from 1') from None
    if seq < 1:
        raise click.BadParameter('"new", "all" or a seq from 1')
    return seq


def _check(topic: str, name: str | None = None) -> None:
    check_name(check_topic, topic)
    if name is not None:
        check_name(lambda n: check_queue_name(n, "consumer name"), name)


@click.group()
@group_node_option
@group_timeout_option
def consumer(node: str | None, timeout: float | None) -> None:
    """Manage durable consumers: work queues on a topic, at least once (docs/PROTOCOL.md
    §8.6)."""


@consumer.command("create")
@click.argument("topic")
@click.argument("name")
@click.option(
    "--ack-wait",
    type=click.FloatRange(min=0, min_open=True, max=MAX_ACK_WAIT),
    default=DEFAULT_ACK_WAIT,
    show_default=True,
    help="Seconds a delivery waits for its ack before it goes again.",
)
@click.option(
    "--max-deliver",
    type=click.IntRange(1, MAX_DELIVER),
    default=DEFAULT_MAX_DELIVER,
    show_default=True,
    help="Deliveries of a message at most; then it goes to TOPIC.NAME.dead.",
)
@click.option(
    "--max-pending",
    type=click.IntRange(1, MAX_PENDING),
    default=DEFAULT_MAX_PENDING,
    show_default=True,
    help="Messages out and not acked, at most.",
)
@click.option(
    "--start",
    default="new",
    show_default=True,
    metavar="new|all|SEQ",
    help="Where it starts: new messages, all of history, or SEQ of the newest epoch.",
)
@node_option
@timeout_option
def consumer_create(
    topic: str, name: str, ack_wait: float, max_deliver: int, max_pending: int, start: str,
    node: str, timeout: float,
) -> None:  # fmt: skip
    """Create durable consumer NAME of TOPIC (again with the same settings: nothing changes)."""
    _check(topic, name)
    settings = {"ack_wait": ack_wait, "max_deliver": max_deliver, "max_pending": max_pending}
    with open_client(node, timeout) as client:
        info = call(client.create_consumer, topic, name, start=_start(start), **settings)
    click.echo(f"consumer {name} of {topic}: from {info['start']}, {_settings(info)}")


@consumer.command("ls")
@click.argument("topic")
@node_option
@timeout_option
def consumer_ls(topic: str, node: str, timeout: float) -> None:
    """List the durable consumers of TOPIC."""
    _check(topic)
    with open_client(node, timeout) as client:
        for name in call(client.request, "consumer_list", topic=topic):
            click.echo(name)


@consumer.command("info")
@click.argument("topic")
@click.argument("name")
@json_option()
@node_option
@timeout_option
def consumer_info(topic: str, name: str, as_json: bool, node: str, timeout: float) -> None:
    """Show a consumer's settings, position, pending messages, counts and members."""
    _check(topic, name)
    with open_client(node, timeout) as client:
        info = call(client.request, "consumer_info", topic=topic, name=name)
    if as_json:
        click.echo(json.dumps(info, sort_keys=True))
        return
    counts = ", ".join(f"{k} {v}" for k, v in sorted(info["counts"].items())) or "none"
    members = ", ".join(f"{n}={c}" for n, c in sorted(info["members"].items())) or "none"
    click.echo(f"consumer {name} of {topic}: {_settings(info)}")
    click.echo(f"  cursor {info['cursor'][0]}/{info['cursor'][1]}  pending {info['pending']}"
               f"  lost {info['lost']}")  # fmt: skip
    click.echo(f"  counts: {counts}")
    click.echo(f"  members: {members}")


@consumer.command("delete")
@click.argument("topic")
@click.argument("name")
@node_option
@timeout_option
def consumer_delete(topic: str, name: str, node: str, timeout: float) -> None:
    """Delete durable consumer NAME of TOPIC: its members get nothing more."""
    _check(topic, name)
    with open_client(node, timeout) as client:
        call(client.request, "consumer_delete", topic=topic, name=name)
    click.echo(f"deleted consumer {name} of {topic}")


def _settings(info: dict[str, Any]) -> str:
    return (
        f"ack_wait {info['ack_wait']:g} s, max_deliver {info['max_deliver']}, "
        f"max_pending {info['max_pending']}"
    )


@click.command()
@click.argument("topic")
@click.argument("name")
@json_option("One JSON object per message, with its delivery count.")
@click.option("--count", type=click.IntRange(min=1), help="Exit 0 after N messages.")
@node_option
@timeout_option
def consume(
    topic: str, name: str, as_json: bool, count: int | None, node: str, timeout: float
) -> None:
    """Print the messages of durable consumer NAME of TOPIC, one line each, acking each
    once it is printed (a message that could not be printed goes again)."""
    _check(topic, name)
    try:
        with stopped_by_sigterm(), open_client(node, timeout) as client:
            member = call(client.consume, topic, name)
            click.echo(f"consuming {name} of {topic}", err=True)
            received = 0
            with member:
                for message in member:
                    if as_json:
                        fields = {
                            "topic": message.topic,
                            "seq": message.seq,
                            "epoch": message.epoch,
                            "deliveries": message.deliveries,
                        }
                        line = json.dumps({**fields, "data": message.data.decode(
                            "utf-8", "backslashreplace")}, ensure_ascii=False)  # fmt: skip
                    else:
                        line = escape(message.data)
                    click.echo(line)
                    message.ack()
                    received += 1
                    if count is not None and received >= count:
                        return
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        stdout_gone()
