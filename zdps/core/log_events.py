"""Log events: what the cores tell the operator, one ``event key=value ...`` line each.

The cores decide what happened and how loud it is; the IO layer only writes the line
(``zdps.daemon.logs``), so the simulator and the tests see the same events the
journal does. A grep for ``peer_down`` or ``node=b`` finds every line about it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

LEVELS = ("debug", "info", "warning", "error")
# A value written without quotes: no space, quote, equals sign, backslash or control
# character (C0, DEL, C1); any other is quoted, its control characters escaped, so that
# a line stays one line of text whatever a peer or client named.
_PLAIN = re.compile(r"[^\s\"=\\\x00-\x1f\x7f-\x9f]+")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPE = re.compile(r'[\\"\x00-\x1f\x7f-\x9f]')


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One thing that happened, named by ``event`` (snake_case), with its facts.

    ``every`` > 0 rate-limits: the IO layer writes at most one line of this event per
    ``every`` seconds and says how many it held back.
    """

    event: str
    fields: tuple[tuple[str, Any], ...] = ()
    level: str = "info"
    every: float = 0.0

    def __post_init__(self) -> None:
        assert self.level in LEVELS, self.level
        assert all(value != "" for _, value in self.fields), self  # never an empty reason

    def __str__(self) -> str:
        return " ".join([self.event, *(f"{key}={_value(value)}" for key, value in self.fields)])


def log_event(event: str, level: str = "info", every: float = 0.0, **fields: Any) -> LogEvent:
    """``LogEvent`` with its fields as keywords, in the order given."""
    return LogEvent(event, tuple(fields.items()), level, every)


def _value(value: Any) -> str:
    if isinstance(value, float):
        value = round(value, 3)
    text = str(value)
    if _PLAIN.fullmatch(text):
        return text
    return '"' + _ESCAPE.sub(_escaped, text) + '"'


def _escaped(match: re.Match[str]) -> str:
    char = match[0]
    return _ESCAPES.get(char) or f"\\x{ord(char):02x}"
