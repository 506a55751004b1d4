"""The zdps command-line front end (installed as the ``zdps_cli`` package)."""
