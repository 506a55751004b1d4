"""``python -m zdps_cli`` runs the same command as ``zdps``."""

from zdps_cli.main import cli

cli()
