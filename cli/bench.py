"""``zdps bench``: publishers and subscribers in processes, throughput and latency."""

from __future__ import annotations

import json
from typing import Any

import click

from zdps.client.protocol import STREAM_BATCH
from zdps.topics import check_topic
from zdps_cli.options import (
    check_endpoints,
    check_name,
    inherited,
    json_option,
    node_option,
    open_client,
)


@click.command()
@click.option(
    "--pub-node",
    "pub_nodes",
    multiple=True,
    callback=check_endpoints,
    help="API endpoint publishers use (repeatable, round-robin).  [default: --node]",
)
@click.option(
    "--sub-node",
    "sub_nodes",
    multiple=True,
    callback=check_endpoints,
    help="API endpoint subscribers use (repeatable, round-robin).  [default: --node]",
)
@click.option("--publishers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--subscribers",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="0: publish only, for subscribers outside the bench (reports what was published "
    "and acknowledged).",
)
@click.option(
    "--sub-procs",
    type=click.IntRange(min=0),
    default=0,
    help="Processes holding the subscribers.  [default: one each, at most 2]",
)
@click.option("--topic", default="bench", show_default=True)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Messages per publisher.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Publish for this many seconds instead of --count messages.",
)
@click.option(
    "--size",
    type=click.IntRange(min=8),
    default=64,
    show_default=True,
    help="Payload bytes (the first 8 carry the send time).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Messages/s per publisher (0: as fast as flow control allows).",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=STREAM_BATCH,
    show_default=True,
    help="Messages per frame at most; with --rate, what is due when the publisher waits "
    "leaves then, one message or more.",
)
@click.option(
    "--window",
    type=click.IntRange(min=1),
    default=20_000,
    show_default=True,
    help="Unacknowledged messages a publisher may have in flight.",
)
@click.option(
    "--ack",
    type=click.Choice(["none", "owner", "replicated"]),
    default="owner",
    show_default=True,
    help="Acknowledgement level publishers wait for.",
)
@click.option("--no-ack", is_flag=True, help="Publish fire-and-forget (--ack none).")
@click.option(
    "--batches",
    is_flag=True,
    help="Subscribers receive whole batches (subscribe(..., batches=True)) instead of "
    "one three-frame message each.",
)
@json_option("Print one JSON object instead of a table.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    callback=inherited(lambda: 30.0),
    help="Seconds a publisher or subscriber waits for its node to answer.  [default: 30]",
)
@node_option
def bench(
    pub_nodes: tuple[str, ...],
    sub_nodes: tuple[str, ...],
    ack: str,
    no_ack: bool,
    as_json: bool,
    node: str,
    **options: Any,
) -> None:
    """Measure throughput and one-way latency through running nodes, like `nats bench`."""
    from zdps.benchmark import BenchConfig, run, table

    config = BenchConfig(
        pub_nodes=list(pub_nodes) or [node],
        # Publishing only: no subscriber's node to default to (or to check).
        sub_nodes=list(sub_nodes) or ([node] if options["subscribers"] else []),
        ack="none" if no_ack else ack,
        **options,
    )
    check_name(check_topic, config.topic)
    for endpoint in dict.fromkeys(config.pub_nodes + config.sub_nodes):
        open_client(endpoint, config.timeout).close()  # no node there: say so at once
    try:
        result = run(config, show_progress=True)
    except Exception as exc:  # a node that does not answer, a worker that died
        raise click.ClickException(f"benchmark failed: {exc}") from None
    click.echo(json.dumps(result) if as_json else table(result))
    if result["lost"] or result["failed"]:
        raise click.ClickException(f"{result['lost']} lost, {result['failed']} failed")
