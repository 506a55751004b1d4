"""``zdps keygen NAME``: a node's CURVE key pair for ``curve_secret_key``/``curve_peers``."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where to write NAME.key (public) and NAME.key_secret (secret, mode 0600).",
)
def keygen(name: str, directory: Path) -> None:
    """Write a CURVE key pair for the node NAME (its node_id).

    Copy NAME.key into the curve_peers directory of every node; keep NAME.key_secret on
    that node only and point its curve_secret_key at it.
    """
    from zdps.keys import KeyFileError, generate

    try:
        public, secret = generate(directory, name)
    except (KeyFileError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"public key: {public}\nsecret key: {secret}")
