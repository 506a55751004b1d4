"""Options and helpers shared by the zdps commands: the node to talk to, and clean errors."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, NoReturn

import click

from zdps.client.protocol import ENV_NODE, ZdpsError
from zdps.client.sockets import CONNECT_CHECK
from zdps.client.sync import Client
from zdps.endpoints import endpoint_problem
from zdps.settings import DEFAULT_API
from zdps.topics import InvalidTopic


def check_endpoints(_ctx: click.Context, param: click.Parameter, value: Any) -> Any:
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
    callback=check_endpoints,
    help=f"API endpoint of the node to talk to (also ${ENV_NODE}).",
)
timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds to wait for the node to answer.",
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
    except (ValueError, OSError) as exc:  # an endpoint ZeroMQ refuses
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
    except ZdpsError as exc:
        raise click.ClickException(str(exc)) from None
