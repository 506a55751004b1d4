"""``zdps start``: one flag per setting (zdps.settings), then the daemon."""

from __future__ import annotations

import contextlib
import faulthandler
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from zdps.daemon.config import ConfigError
from zdps.setting import Setting
from zdps.settings import SETTINGS

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
            type=_click_type(setting),
            multiple=setting.type is list,
            help=f"{setting.help}{repeatable}  [default: {setting.shown_default}{bounds}]",
        )(command)
    return command


def _click_type(setting: Setting) -> Any:
    """A setting's flag type; choices match in any case (``--log-level DEBUG``), as in
    the TOML file, and reach ``load`` as the setting spells them."""
    if setting.choices:
        return click.Choice(setting.choices, case_sensitive=False)
    return _CLICK_TYPES[setting.type]


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML file; its keys are these flags with underscores (seeds for --seed).",
)
@_setting_options
def start(config_path: Path | None, **flags: Any) -> None:
    """Run a node in the foreground until SIGTERM or SIGINT (which drain it first)."""
    from zdps.daemon.config import load
    from zdps.daemon.loop import Daemon

    try:
        config = load(config_path, flags)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    with contextlib.suppress(ValueError):  # stderr not a file: the CLI run in-process
        faulthandler.enable()  # a crash or a SIGABRT writes every thread's stack to the log
    try:
        node = Daemon(config)
    except Exception as exc:  # bind failures and the like: one clear line, exit 1
        raise click.ClickException(f"cannot start node {config.node_id}: {exc}") from None
    sys.exit(node.run())
