"""Options and helpers shared by the zdps commands: the node to talk to, and clean errors."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any, NoReturn

import click

from zdps.client.protocol import ENV_NODE, ZdpsError
from zdps.client.sockets import CONNECT_CHECK
from zdps.client.sync import Client
from zdps.endpoints import endpoint_problem
from zdps.settings import DEFAULT_API
from zdps.topics import InvalidTopic


@contextlib.contextmanager
def stopped_by_sigterm() -> Iterator[None]:
    """SIGTERM (``kill``, systemd) stops the command as Ctrl-C does: it raises
    KeyboardInterrupt, so the command ends the way it documents for an interrupt."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def check_endpoints(_ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Refuse an endpoint ZeroMQ could not dial, in one line (exit 1)."""
    for endpoint in value if isinstance(value, tuple) else [value] if value else []:
        problem = endpoint_problem(endpoint)
        if problem:
            raise click.ClickException(f"{param.opts[0]} {endpoint!r} {problem}")
    return value


def inherited(default: Any) -> Any:
    """A callback for an option that a group (``zdps --node X status``, ``zdps topic
    --node X delete T``) may also give: the command's own value first, then the nearest
    group's, then ``default`` (a callable, read only then)."""

    def resolve(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None or value is False:
            parent = ctx.parent
            while parent is not None and parent.params.get(param.name) in (None, False):
                parent = parent.parent
            value = default() if parent is None else parent.params[param.name]
        return check_endpoints(ctx, param, value) if param.name == "node" else value

    return resolve


def _node_default() -> str:
    return os.environ.get(ENV_NODE) or DEFAULT_API


NODE_HELP = f"API endpoint of the node to talk to.  [default: ${ENV_NODE}, else {DEFAULT_API}]"
TIMEOUT_HELP = "Seconds to wait for the node to answer."

node_option = click.option("--node", callback=inherited(_node_default), help=NODE_HELP)
timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    callback=inherited(lambda: 10.0),
    help=f"{TIMEOUT_HELP}  [default: 10]",
)


def json_option(help: str = "Machine-readable output.") -> Any:
    return click.option("--json", "as_json", is_flag=True, callback=inherited(bool), help=help)


# The same options on a group, for its commands: given there, they are only defaults.
group_node_option = click.option("--node", callback=check_endpoints, help=NODE_HELP)
group_timeout_option = click.option(
    "--timeout", type=click.FloatRange(min=0.1), help=f"{TIMEOUT_HELP}  [default: the command's]"
)


def check_name(validate: Any, value: str) -> None:
    try:
        validate(value)
    except InvalidTopic as exc:
        raise click.BadParameter(str(exc)) from None


def open_client(node: str, timeout: float) -> Client:
    """A client of ``node``, or a one-line error at once if no zdps node is there."""
    try:
        client = Client(node, timeout=timeout)
    except (ValueError, OSError) as exc:  # an endpoint ZeroMQ refuses, a bad key file
        raise click.ClickException(str(exc)) from None
    try:
        client.check_node(min(timeout, CONNECT_CHECK))
    except ZdpsError as exc:
        client.close(linger=0)
        raise click.ClickException(exc.message) from None
    return client


def stdout_gone() -> NoReturn:
    """Whoever read our stdout has gone (``| head``): stop quietly, successfully."""
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(0)


def call(function: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return function(*args, **kwargs)
    except (ZdpsError, ValueError) as exc:  # ValueError: arguments the client refused
        raise click.ClickException(str(exc)) from None
