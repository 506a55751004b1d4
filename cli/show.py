"""``zdps status`` and ``zdps members``: what a node knows, once or watched."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from zdps.client.protocol import ZdpsError
from zdps.core.seeds import CONNECTION as SEED_CONNECTION
from zdps.topics import check_topic
from zdps_cli.lines import escape
from zdps_cli.options import (
    call,
    check_name,
    json_option,
    node_option,
    open_client,
    stdout_gone,
    timeout_option,
)


@click.command()
@json_option()
@node_option
@timeout_option
def status(as_json: bool, node: str, timeout: float) -> None:
    """Show the node's identity, peers, ring and counters."""
    with open_client(node, timeout) as client:
        info = call(client.status)
    if as_json:
        click.echo(json.dumps(info, indent=2, sort_keys=True))
        return
    endpoints = info["endpoints"]
    click.echo(
        f"node      {info['node']}  (scope {info['scope']}, zdps {info['version']}, "
        f"pid {info['pid']}, up {info['uptime_s']:.1f}s, "
        f"{info.get('expansion', 'python')} delivery loop, "
        f"cluster {_security(info.get('cluster_security'))}, "
        f"clients {_security(info.get('client_security'))})"
    )
    click.echo(
        f"endpoints cluster={endpoints['cluster']} advertise={endpoints['advertise']} "
        f"api={endpoints['api']} pub={endpoints['pub']} batch_pub={endpoints['batch_pub']}"
    )
    ring = info["ring"]
    click.echo(
        f"ring      {len(ring['nodes'])} node(s) {' '.join(ring['nodes'])}  [{ring['digest']}]"
    )
    click.echo(f"groups    {info['groups']['local']} local, {info['groups']['cluster']} in scope")
    if info.get("paused"):
        held = info.get("held", {})
        click.echo(
            f"SATURATED peers have not confirmed what it sent them; holding "
            f"{held.get('frames', 0)} client frame(s), {held.get('bytes', 0)} bytes"
        )
    click.echo("peers" + ("" if info["peers"] else "     none"))
    for peer in info["peers"]:
        click.echo(
            f"  {peer['node']:<16} {peer['state']:<8} {peer['endpoint']:<28} "
            f"up {peer['since_s']:.1f}s  fanout_sent {peer['fanout_sent']}"
        )
    _print_seeds(info["seeds"])
    for clash in info["clashes"]:
        click.echo(
            f"CLASH     node id {info['node']} is also used by the node at {clash['endpoint']} "
            f"(seen {clash['seen_s_ago']:.1f}s ago): give one of them another node_id"
        )
    click.echo("counters")
    for name, value in info["counters"].items():
        click.echo(f"  {name:<22} {value}")
    losses = info.get("subscriber_losses", {}).get("by_topic", {})
    for topic, lost in list(losses.items())[:5]:  # the node ranks them, worst first
        click.echo(f"    lost by SUBs of {escape(topic.encode())}: {lost}")
    reports = info.get("subscriber_losses", {}).get("by_subscriber", {})
    for name, counts in list(reports.items())[:5]:  # ranked by messages missed
        click.echo(
            f"    {escape(name.encode())} missed {counts['missed']}, "
            f"recovered {counts['recovered']} from history"
        )
    errors = info["errors"]
    click.echo("errors" + ("" if errors else "    none"))
    for name, value in sorted(errors.items()):
        click.echo(f"  {name:<22} {value}")


def _print_seeds(seeds: list[dict[str, Any]]) -> None:
    click.echo("seeds" + ("" if seeds else "     none"))
    for seed in seeds:
        if seed["state"] == "waiting":
            fact = SEED_CONNECTION.get(seed["connection"], seed["connection"])
            state = f"no answer for {seed['waiting_s']:.1f}s ({seed['hellos']} hellos): {fact}"
        elif seed["state"] == "self":
            state = "this node"
        elif seed["node"]:
            state = f"answered by {seed['node']}"
        else:
            state = "not dialled yet"
        click.echo(f"  {seed['endpoint']:<28} {state}")


@click.command()
@click.argument("topic")
@json_option()
@click.option("--watch", is_flag=True, help="Print again after every change, until interrupted.")
@node_option
@timeout_option
def members(topic: str, as_json: bool, watch: bool, node: str, timeout: float) -> None:
    """Show the owner of TOPIC and the nodes a publish to it reaches."""
    check_name(check_topic, topic)
    with open_client(node, timeout) as client:
        if not watch:
            _print_members(call(client.members, topic), as_json)
            return
        try:
            for view in client.watch(topic):
                _print_members(view, as_json)
        except KeyboardInterrupt:
            pass
        except BrokenPipeError:
            stdout_gone()
        except ZdpsError as exc:
            raise click.ClickException(str(exc)) from None


def _print_members(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(view, sort_keys=True), nl=True)
        sys.stdout.flush()
        return
    event = view.get("event")
    if event:
        group = event["group"] + ("*" if event["prefix"] else "")
        click.echo(f"{event['kind']} {group} on {event['node']} ({event['count']})")
    nodes = ", ".join(f"{n}={c}" for n, c in sorted(view["nodes"].items())) or "none"
    click.echo(f"topic {view['topic']}  owner {view['owner']}  nodes {nodes}")
    for name, members in sorted(view.get("queues", {}).items()):
        click.echo(f"  queue group {name}: " + ", ".join(f"{n}={c}" for n, c in members.items()))


def _security(kind: str | None) -> str:
    return "CURVE" if kind == "curve" else "plain text"
