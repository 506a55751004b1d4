"""Shared cases of the recovery tests: messages, history entries and gaps of topic "t"."""

from __future__ import annotations

from zdps.client.protocol import Message
from zdps.client.recovery import (
    Gap,
    Recovery,
)

Key = tuple[int, int]


def m(epoch: int, seq: int, topic: str = "t") -> Message:
    return Message(topic, seq, epoch, b"%d.%d" % (epoch, seq))


def entry(epoch: int, seq: int) -> list:
    """A history entry ``[epoch, seq, payload]`` of the message ``m(epoch, seq)``."""
    return [epoch, seq, b"%d.%d" % (epoch, seq)]


def entries(*keys: Key) -> list[list]:
    return [entry(*key) for key in keys]


def gap(epoch: int, first: int, last: int, topic: str = "t") -> Gap:
    return Gap(topic, epoch, first, last)


def started(*keys: Key) -> Recovery:
    """A Recovery that delivered ``keys`` of topic "t" live, in order, without fetching."""
    recovery = Recovery()
    for key in keys:
        assert recovery.live(m(*key)) == [m(*key)]
    return recovery


def closed(epoch: int, seq: int, topic: str = "t") -> Message:
    """The ``closed`` control message that ends ``topic``."""
    return Message(topic, seq, epoch, b"", "closed")


def serve(history: list[Key], args: dict, limit: int) -> dict:
    """One page of ``history`` as a node answers a ``history`` request (§7.9)."""
    if "since" in args:
        newest = history[-1][0] if history else 0
        start: Key = (newest, args["since"]) if args["since"] else (0, 0)
        match = [key for key in history if key >= start]
    else:
        after = tuple(args["after"])
        match = [key for key in history if key > after]
    if "until" in args:
        match = [key for key in match if key < tuple(args["until"])]
    return {"entries": entries(*match[:limit]), "more": len(match) > limit}
