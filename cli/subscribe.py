"""``zdps subscribe``: messages and gaps, one line each (text or JSON)."""

from __future__ import annotations

import base64
import json
from typing import Any

import click

from zdps.client.protocol import Message
from zdps.client.recovery import Gap
from zdps.topics import check_prefix, check_queue_name, check_topic
from zdps_cli.lines import escape
from zdps_cli.options import (
    call,
    check_name,
    json_option,
    node_option,
    open_client,
    stdout_gone,
    stopped_by_sigterm,
    timeout_option,
)


@click.command()
@click.argument("topics", nargs=-1, required=True)
@json_option("One JSON object per message.")
@click.option("--count", type=click.IntRange(min=1), help="Exit 0 after N messages.")
@click.option("--prefix", is_flag=True, help="TOPICS are prefixes: receive every topic under them.")
@click.option(
    "--since",
    type=click.IntRange(min=0),
    help="First replay history from this seq of the newest epoch (0: all), then go live.",
)
@click.option(
    "--recover/--no-recover",
    default=True,
    show_default=True,
    help="Fetch messages missed in a gap or across an owner change from history; report "
    "what is gone for good as a gap.",
)
@click.option(
    "--group",
    metavar="NAME",
    help="Join queue group NAME: each message goes to one of its members, here or on any "
    "node, at most once, without recovery.",
)
@node_option
@timeout_option
def subscribe(
    topics: tuple[str, ...],
    as_json: bool,
    count: int | None,
    prefix: bool,
    since: int | None,
    recover: bool,
    group: str | None,
    node: str,
    timeout: float,
) -> None:
    """Print messages published to TOPICS, one line each.

    Plain output is the payload, with control characters and bytes that are not UTF-8
    escaped (a backslash is doubled; \\n, \\t, \\r, \\xHH); with several topics or
    --prefix each line starts with the topic and a tab. A gap (messages lost for
    good) is a JSON object with a "gap" key with --json, else a line on stderr.
    Ends (exit 0) after --count messages or when every topic has been deleted.
    """
    for topic in topics:
        check_name(check_prefix if prefix else check_topic, topic)
    if since is not None and prefix:
        raise click.UsageError("--since needs exact topics, not --prefix")
    if group is not None:
        check_name(check_queue_name, group)
        if since is not None:
            raise click.UsageError("--since replays history, which a queue group does not")
    try:
        with stopped_by_sigterm(), open_client(node, timeout) as client:
            subscription = call(
                client.subscribe,
                *topics,
                prefix=prefix,
                recover=recover,
                since=since,
                batches=True,  # the same messages, for a fraction of the node's work
                group=group,
            )
            names = " ".join(t + "*" if prefix else t for t in topics)
            click.echo(f"subscribed {names}" + (f" in group {group}" if group else ""), err=True)
            show_topic = prefix or len(topics) > 1
            received = 0
            with subscription:
                for msg in subscription:
                    if isinstance(msg, Gap):
                        _print_gap(msg, as_json)
                        continue
                    click.echo(_json_line(msg) if as_json else _text_line(msg, show_topic))
                    received += 1
                    if count is not None and received >= count:
                        return
            click.echo("subscription ended: topic deleted", err=True)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: what was received has been printed
        pass
    except BrokenPipeError:
        stdout_gone()


def _json_line(msg: Message) -> str:
    obj: dict[str, Any] = {"topic": msg.topic, "seq": msg.seq, "epoch": msg.epoch}
    try:
        obj["data"] = msg.data.decode("utf-8")
    except UnicodeDecodeError:
        obj["data"] = msg.data.decode("utf-8", "backslashreplace")
        obj["data_b64"] = base64.b64encode(msg.data).decode("ascii")
    return json.dumps(obj, ensure_ascii=False)


def _print_gap(gap: Gap, as_json: bool) -> None:
    fields = {"topic": gap.topic, "epoch": gap.epoch, "from": gap.first, "to": gap.last}
    if as_json:
        click.echo(json.dumps({"gap": fields}, ensure_ascii=False))
    else:
        click.echo(f"gap: {gap.topic} epoch {gap.epoch} seq {gap.first}-{gap.last} lost", err=True)


def _text_line(msg: Message, show_topic: bool) -> str:
    text = escape(msg.data)
    return f"{msg.topic}\t{text}" if show_topic else text
