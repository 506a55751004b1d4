"""``zdps config check FILE`` and ``zdps config show``: a configuration before it runs."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import click

_FILE = click.Path(dir_okay=False, path_type=Path)


@click.group()
def config() -> None:
    """Check a node's configuration, or show the settings it would run with."""


@config.command()
@click.argument("path", type=_FILE)
def check(path: Path) -> None:
    """Report every bad key or value of the TOML file PATH (with the ZDPS_* environment
    on top, as ``zdps start`` reads them), and of its [gateway] table; exit 1 if there
    is any."""
    from zdps.daemon.config import problems
    from zdps.gateway import config as gateway

    found = problems(path, {})
    with contextlib.suppress(ValueError):  # an unreadable file: the node's check says so
        found += [f"[gateway] {problem}" for problem in gateway.problems(gateway.table_of(path))]
    for problem in found:
        click.echo(f"{path}: {problem}", err=True)
    if found:
        raise SystemExit(1)
    click.echo(f"{path}: ok")


@config.command()
@click.option("--config", "path", type=_FILE, help="The TOML file, as for zdps start.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: {key: {value, source}}.")
def show(path: Path | None, as_json: bool) -> None:
    """The settings a node would run with, and where each came from: a ZDPS_* environment
    variable, the file, or the default."""
    from zdps.daemon.config import ConfigError, gather, load
    from zdps.settings import SETTINGS

    try:
        config = load(path, {})
        _, sources = gather(path, {})
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    shown: dict[str, dict[str, Any]] = {}
    for setting in SETTINGS:
        source = sources.get(setting.name) or ("computed" if setting.factory else "default")
        shown[setting.name] = {"value": getattr(config, setting.name), "source": source}
    if as_json:
        click.echo(json.dumps(shown, indent=2))
        return
    for name, row in shown.items():
        click.echo(f"{name:<20} {row['value']!r:<40} {row['source']}")
