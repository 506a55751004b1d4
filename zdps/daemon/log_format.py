"""How a log line looks: ``key=value`` text, or JSON (``log_format``).

Under journald (``$JOURNAL_STREAM`` names our stderr) the text line carries no time,
which the journal adds itself, but a ``<N>`` syslog priority prefix, so that
``journalctl -p warning`` finds the warnings. Elsewhere it starts with the time.
JSON is one object per line: ``time``, ``level``, ``node``, then either the event and
its fields (a ``LogEvent``) or the ``message``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime

from zdps.core.log_events import LogEvent

# syslog priorities (sd-daemon(3)): journald reads them from the line's start
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3}


def under_journald(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether stderr is the journal's stream (``$JOURNAL_STREAM`` is its device:inode)."""
    stream = environ.get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(part) for part in stream.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)


class TextFormatter(logging.Formatter):
    """``TIME LEVEL zdps[NODE] EVENT key=value ...``; under journald ``<N>LEVEL ...``."""

    def __init__(self, node: str, journald: bool) -> None:
        if journald:
            super().__init__(f"%(levelname)s zdps[{node}] %(message)s")
        else:
            super().__init__(f"%(asctime)s %(levelname)s zdps[{node}] %(message)s")
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if self.journald:
            priority = _PRIORITY.get(record.levelno, 6)
            line = "\n".join(f"<{priority}>{part}" for part in line.split("\n"))
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``node`` (this node) and ``event``,
    then the event's fields; one named as one of those goes as ``event_<name>``
    (``peer_down``'s ``node``, the peer, is ``event_node``)."""

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "node": self.node,
        }
        event = record.args[0] if isinstance(record.args, tuple) and record.args else None
        if isinstance(event, LogEvent):
            line["event"] = event.event
            for key, value in event.fields:  # the peer of peer_up's node=... is not this node
                line[f"event_{key}" if key in line else key] = _plain(value)
            held = getattr(record, "held_back", 0)
            if held:
                line["held_back"] = held
        else:
            line["message"] = record.getMessage()
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def _plain(value: object) -> object:
    """A field as JSON holds it: numbers, text, booleans and null as they are."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return round(value, 3)
    return str(value)
