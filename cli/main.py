"""The ``zdps`` command: run a node, publish, subscribe, inspect."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import click

from zdps import __version__
from zdps.client.protocol import ENV_NODE, Message, PublishError, ZdpsError
from zdps.client.recovery import Gap
from zdps.client.sync import Client
from zdps.daemon.config import ConfigError
from zdps.endpoints import endpoint_problem
from zdps.settings import DEFAULT_API, SETTINGS
from zdps.topics import InvalidTopic, check_prefix, check_topic


def _check_endpoints(_ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Refuse an endpoint ZeroMQ could not dial, in one line (exit 1)."""
    for endpoint in value if isinstance(value, tuple) else [value]:
        problem = endpoint_problem(endpoint)
        if problem:
            raise click.ClickException(f"{param.opts[0]} {endpoint!r} {problem}")
    return value


node_option = click.option(
    "--node",
    envvar=ENV_NODE,
    default=DEFAULT_API,
    show_default=True,
    callback=_check_endpoints,
    help=f"API endpoint of the node to talk to (also ${ENV_NODE}).",
)
timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds to wait for the node to answer.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zdps")
def cli() -> None:
    """zdps: a peer-to-peer cluster of ZeroMQ daemons that routes messages by topic."""


# ---------------------------------------------------------------------- start


_CLICK_TYPES: dict[type, type] = {str: str, list: str, int: int, float: float}


def _setting_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """One flag per setting of ``zdps.settings``, its help and default from there.

    Each flag defaults to None (a repeatable one to no values), so that ``load`` can tell
    the flags that were given, and only those beat the config file.
    """
    for setting in reversed(SETTINGS):
        bounds = "" if setting.choices or not setting.bounds else f"; {setting.bounds}"
        repeatable = f" Repeat {setting.flag} for each one." if setting.type is list else ""
        command = click.option(
            setting.flag,
            setting.name,
            type=click.Choice(setting.choices) if setting.choices else _CLICK_TYPES[setting.type],
            multiple=setting.type is list,
            help=f"{setting.help}{repeatable}  [default: {setting.shown_default}{bounds}]",
        )(command)
    return command


@cli.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML file; its keys are these flags with underscores (seeds for --seed).",
)
@_setting_options
def start(config_path: Path | None, **flags: Any) -> None:
    """Run a node in the foreground until SIGTERM or SIGINT."""
    from zdps.daemon.config import load
    from zdps.daemon.loop import Daemon

    try:
        config = load(config_path, flags)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        node = Daemon(config)
    except Exception as exc:  # bind failures and the like: one clear line, exit 1
        raise click.ClickException(f"cannot start node {config.node_id}: {exc}") from None
    sys.exit(node.run())


# ---------------------------------------------------------------------- publish


@cli.command()
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
    _check(check_topic, topic)
    # A MESSAGE argument goes out as the bytes it was given (not necessarily UTF-8).
    stdin = _StdinLines() if message is None else None
    lines: Any = [os.fsencode(message)] if stdin is None else stdin
    with _client(node, timeout) as client:
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


# ---------------------------------------------------------------------- subscribe


@cli.command()
@click.argument("topics", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message.")
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
@node_option
@timeout_option
def subscribe(
    topics: tuple[str, ...],
    as_json: bool,
    count: int | None,
    prefix: bool,
    since: int | None,
    recover: bool,
    node: str,
    timeout: float,
) -> None:
    """Print messages published to TOPICS, one line each.

    Plain output is the payload; with several topics or --prefix each line starts
    with the topic and a tab. A gap (messages lost for good) is a JSON object with a
    "gap" key with --json, else a line on stderr. Ends (exit 0) after --count
    messages or when every topic has been deleted.
    """
    for topic in topics:
        _check(check_prefix if prefix else check_topic, topic)
    if since is not None and prefix:
        raise click.UsageError("--since needs exact topics, not --prefix")
    try:
        with _client(node, timeout) as client:
            subscription = _call(
                client.subscribe, *topics, prefix=prefix, recover=recover, since=since
            )
            click.echo(f"subscribed {' '.join(t + '*' if prefix else t for t in topics)}", err=True)
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
    except KeyboardInterrupt:  # Ctrl-C: what was received has been printed
        pass
    except BrokenPipeError:
        _stdout_gone()


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
    text = msg.data.decode("utf-8", "backslashreplace").replace("\n", "\\n")
    return f"{msg.topic}\t{text}" if show_topic else text


# ---------------------------------------------------------------------- status


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@node_option
@timeout_option
def status(as_json: bool, node: str, timeout: float) -> None:
    """Show the node's identity, peers, ring and counters."""
    with _client(node, timeout) as client:
        info = _call(client.status)
    if as_json:
        click.echo(json.dumps(info, indent=2, sort_keys=True))
        return
    endpoints = info["endpoints"]
    click.echo(
        f"node      {info['node']}  (scope {info['scope']}, zdps {info['version']}, "
        f"pid {info['pid']}, up {info['uptime_s']:.1f}s)"
    )
    click.echo(
        f"endpoints cluster={endpoints['cluster']} advertise={endpoints['advertise']} "
        f"api={endpoints['api']} pub={endpoints['pub']}"
    )
    ring = info["ring"]
    click.echo(
        f"ring      {len(ring['nodes'])} node(s) {' '.join(ring['nodes'])}  [{ring['digest']}]"
    )
    click.echo(f"groups    {info['groups']['local']} local, {info['groups']['cluster']} in scope")
    click.echo("peers" + ("" if info["peers"] else "     none"))
    for peer in info["peers"]:
        click.echo(
            f"  {peer['node']:<16} {peer['state']:<8} {peer['endpoint']:<28} "
            f"up {peer['since_s']:.1f}s  fanout_sent {peer['fanout_sent']}"
        )
    click.echo("counters")
    for name, value in info["counters"].items():
        click.echo(f"  {name:<22} {value}")
    errors = info["errors"]
    click.echo("errors" + ("" if errors else "    none"))
    for name, value in sorted(errors.items()):
        click.echo(f"  {name:<22} {value}")


# ---------------------------------------------------------------------- members


@cli.command()
@click.argument("topic")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--watch", is_flag=True, help="Print again after every change, until interrupted.")
@node_option
@timeout_option
def members(topic: str, as_json: bool, watch: bool, node: str, timeout: float) -> None:
    """Show the owner of TOPIC and the nodes a publish to it reaches."""
    _check(check_topic, topic)
    with _client(node, timeout) as client:
        if not watch:
            _print_members(_call(client.members, topic), as_json)
            return
        try:
            for view in client.watch(topic):
                _print_members(view, as_json)
        except KeyboardInterrupt:
            pass
        except BrokenPipeError:
            _stdout_gone()
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


# ---------------------------------------------------------------------- bench


@cli.command()
@click.option(
    "--pub-node",
    "pub_nodes",
    multiple=True,
    callback=_check_endpoints,
    help="API endpoint publishers use (repeatable, round-robin).  [default: --node]",
)
@click.option(
    "--sub-node",
    "sub_nodes",
    multiple=True,
    callback=_check_endpoints,
    help="API endpoint subscribers use (repeatable, round-robin).  [default: --node]",
)
@click.option("--publishers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--subscribers", type=click.IntRange(min=1), default=1, show_default=True)
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
    default=256,
    show_default=True,
    help="Messages per frame from a publisher at full speed.",
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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
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
        sub_nodes=list(sub_nodes) or [node],
        ack="none" if no_ack else ack,
        **options,
    )
    _check(check_topic, config.topic)
    try:
        result = run(config, show_progress=True)
    except Exception as exc:  # a node that does not answer, a worker that died
        raise click.ClickException(f"benchmark failed: {exc}") from None
    click.echo(json.dumps(result) if as_json else table(result))
    if result["lost"] or result["failed"]:
        raise click.ClickException(f"{result['lost']} lost, {result['failed']} failed")


# ---------------------------------------------------------------------- topic


@cli.group()
def topic() -> None:
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
    _check(check_topic, name)
    with _client(node, timeout) as client:
        _call(client.create_topic, name, history, ttl)
    click.echo(f"topic {name}: history {history} message(s), ttl {ttl:g} s")


@topic.command("delete")
@click.argument("name")
@node_option
@timeout_option
def topic_delete(name: str, node: str, timeout: float) -> None:
    """Send a final 'closed' message to every subscriber of NAME, ending their subscriptions."""
    _check(check_topic, name)
    with _client(node, timeout) as client:
        result = _call(client.delete_topic, name)
    click.echo(
        f"deleted {name}: closed sent to {result.nodes} node(s), {result.subscribers} subscriber(s)"
    )


# ---------------------------------------------------------------------- helpers


def _check(validate: Any, value: str) -> None:
    try:
        validate(value)
    except InvalidTopic as exc:
        raise click.BadParameter(str(exc)) from None


def _client(node: str, timeout: float) -> Client:
    try:
        return Client(node, timeout=timeout)
    except (ValueError, OSError) as exc:  # an endpoint ZeroMQ refuses
        raise click.ClickException(str(exc)) from None


def _stdout_gone() -> NoReturn:
    """Whoever read our stdout has gone (``| head``): stop quietly, successfully."""
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(0)


def _call(function: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return function(*args, **kwargs)
    except ZdpsError as exc:
        raise click.ClickException(str(exc)) from None
