"""The base of every request op and the checks its args share (§8.3).

Each op is one frozen dataclass whose ``decode`` checks its args completely; ``OPS`` in
``api.py`` lists them all. Kept apart from ``api.py`` so that ops of other concerns
(``consumers.py``) are written next to their own messages.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from zdps.topics import InvalidTopic, check_topic
from zdps.wire.errors import E_INVALID_TOPIC, ProtocolError


def need_topic(value: Any) -> str:
    try:
        check_topic(value)
    except InvalidTopic as exc:
        raise ProtocolError(E_INVALID_TOPIC, str(exc)) from None
    return value


class Op:
    """The args of one request op, checked (subclasses are frozen dataclasses)."""

    __slots__ = ()
    OP: ClassVar[str]
    SHAPE: ClassVar[str] = "{}"  # the args as docs/PROTOCOL.md §8.3 writes them

    @classmethod
    def decode(cls, args: dict) -> Self:
        return cls()

    def args(self) -> dict[str, Any]:
        return {}
