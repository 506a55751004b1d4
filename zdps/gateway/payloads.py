"""zdps messages as Phoenix events, and back (docs/GATEWAY.md, "Payloads").

A WebSocket client's ``publish`` of ``[event, body]`` is stored as that JSON array, so
every gateway hands the same event and body to its own clients. What anything else
published arrives as:

* JSON ``[event (a string), body]``: that event with that body;
* any other JSON: event ``message`` with the JSON as its body;
* other UTF-8 text: event ``message`` with the text as a JSON string;
* anything else: event ``message`` in a binary V2 frame, the bytes as they are.
"""

from __future__ import annotations

import json
from typing import Any

from zdps.gateway import phoenix

MESSAGE = "message"  # the event of a message that does not name one
Event = tuple[str, Any] | bytes  # (event, body) for a JSON push, bytes for a binary one


def as_event(data: bytes) -> Event:
    """(event, body) for a JSON push, or the bytes for a binary one."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    try:
        value = json.loads(text)
    except ValueError:
        return MESSAGE, text
    if type(value) is list and len(value) == 2 and type(value[0]) is str:
        return value[0], value[1]
    return MESSAGE, value


def push_of(
    join_ref: str, positioned: bool, topic: str, event: Event, position: phoenix.Position
) -> str | bytes | None:
    """A message as a push: JSON (with its position as ref on a positioned channel) or,
    for bytes that are neither JSON nor text, binary (None: a binary push whose names
    do not fit its length bytes)."""
    if isinstance(event, bytes):
        return phoenix.binary_push(join_ref, topic, MESSAGE, event)
    return phoenix.push(join_ref, topic, *event, position if positioned else None)
