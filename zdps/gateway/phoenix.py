"""Phoenix Channels V2 (JSON) on one WebSocket: frames in, actions out, no IO.

As phoenixframework/phoenix's V2.JSONSerializer, Phoenix.Socket and
Phoenix.Channel.Server behave, for the channel every zdps topic is (docs/GATEWAY.md):

* a frame is ``[join_ref, ref, topic, event, payload]``, compact JSON, UTF-8 as is;
* ``heartbeat`` on topic ``phoenix`` is answered ok;
* ``phx_join`` joins (a second join of the same topic closes the first with
  ``phx_close``; at most MAX_CHANNELS per socket), ``phx_leave`` leaves (an ok reply,
  then ``phx_close``);
* an event on a topic the socket has not joined gets ``unmatched topic``;
* ``publish`` with ``[event, body]`` publishes to the zdps topic of the channel's name.

The gateway carries out the actions (``Join``, ``Leave``, ``Publish``) and answers
with ``reply``; ``push`` makes what a joined socket receives, with its own join_ref.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from zdps.core.permissions import Permissions
from zdps.topics import InvalidTopic, check_topic

MAX_CHANNELS = 100  # Phoenix's default per socket
PHOENIX = "phoenix"  # the socket's own topic: heartbeats
Position = tuple[int, int]  # (epoch, seq) of a zdps message


def encode(frame: list) -> str:
    """Compact JSON, UTF-8 not escaped: byte for byte what Phoenix sends."""
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


def reply(join_ref: str | None, ref: str | None, topic: str, ok: bool, response: Any) -> str:
    status = "ok" if ok else "error"
    return encode([join_ref, ref, topic, "phx_reply", {"status": status, "response": response}])


def error_reply(join_ref: str | None, ref: str | None, topic: str, reason: str) -> str:
    return reply(join_ref, ref, topic, False, {"reason": reason})


def close(join_ref: str, topic: str) -> str:
    """``phx_close`` of a channel: the client's join is over."""
    return encode([join_ref, join_ref, topic, "phx_close", {}])


class BadFrame(ValueError):
    """A text frame that is not a V2 message: the socket is closed (1007) and counted."""


@dataclass(frozen=True, slots=True)
class Asked:
    """What a client asked of ``topic`` under ``join_ref`` and ``ref``, to be answered."""

    join_ref: str
    ref: str | None
    topic: str


@dataclass(frozen=True, slots=True)
class Join(Asked):
    """Deliver ``topic`` to this socket, then send ``ok`` (``reply``); with ``since``,
    first what history holds after that position (docs/GATEWAY.md, "Recovery")."""

    since: Position | None = None


@dataclass(frozen=True, slots=True)
class Publish(Asked):
    """Publish ``data`` to ``topic``, then answer with the outcome."""

    data: bytes


class Leave(NamedTuple):
    """Stop delivering ``topic`` to this socket."""

    topic: str


Action = str | Join | Leave | Publish  # a plain str is a frame to send as it is


@dataclass(slots=True)
class PhoenixSocket:
    """One WebSocket's channels: topic -> the join_ref of its current join; and the
    topics joined with ``since``, whose pushes carry their position as ref."""

    channels: dict[str, str] = field(default_factory=dict)
    positioned: set[str] = field(default_factory=set)
    permissions: Permissions | None = None  # with a tokens file: what ``user`` may do
    user: str | None = None
    token: str | None = None  # the token it connected with, checked again on SIGHUP

    def on_text(self, text: str) -> list[Action]:
        """What one text frame asks for; BadFrame if it is no V2 message."""
        join_ref, ref, topic, event, payload = parse(text)
        if topic == PHOENIX and event == "heartbeat":
            return [reply(join_ref, ref, topic, True, {})]
        if event == "phx_join":
            return self._join(join_ref, ref, topic, payload)
        current = self.channels.get(topic)
        if current is None or (join_ref is not None and join_ref != current):
            return [error_reply(None, ref, topic, "unmatched topic")]
        if event == "phx_leave":
            self.drop(topic)
            return [Leave(topic), reply(current, ref, topic, True, {}), close(current, topic)]
        if event != "publish":
            return [error_reply(current, ref, topic, f"unknown event {event[:64]!r}")]
        if type(payload) is not list or len(payload) != 2 or type(payload[0]) is not str:
            return [error_reply(current, ref, topic, "publish takes [event, body]")]
        if self.permissions is not None and not self.permissions.may_publish(self.user, topic):
            return [error_reply(current, ref, topic, "forbidden")]
        return [Publish(current, ref, topic, encode(payload).encode())]

    def _join(self, join_ref: str | None, ref: str | None, topic: str, params: Any) -> list[Action]:
        if join_ref is None or topic == PHOENIX or not _is_topic(topic):
            return [error_reply(None, ref, topic, "unmatched topic")]
        permissions = self.permissions
        if permissions is not None and not permissions.may_subscribe(
            self.user, topic.encode() + b"\x00"
        ):
            return [error_reply(join_ref, ref, topic, "unauthorized")]
        positioned = type(params) is dict and "since" in params
        since = params["since"] if positioned else None
        if since is not None and not _is_position(since):
            why = "since is null or {epoch, seq}: integers from 0"
            return [error_reply(join_ref, ref, topic, why)]
        old = self.drop(topic)
        if old is None and len(self.channels) >= MAX_CHANNELS:
            return [error_reply(join_ref, ref, topic, "too many channels joined")]
        self.channels[topic] = join_ref
        if positioned:
            self.positioned.add(topic)
        position = None if since is None else (since["epoch"], since["seq"])
        join = Join(join_ref, ref, topic, position)
        return ([close(old, topic)] if old is not None else []) + [join]

    def drop(self, topic: str) -> str | None:
        """Forget ``topic``'s channel (left, refused, or the topic deleted); its join_ref."""
        self.positioned.discard(topic)
        return self.channels.pop(topic, None)

    def channel(self, topic: str) -> tuple[str, bool] | None:
        """The join_ref of ``topic``'s channel and whether its pushes carry positions."""
        join_ref = self.channels.get(topic)
        return None if join_ref is None else (join_ref, topic in self.positioned)


def _is_topic(name: str) -> bool:
    try:
        check_topic(name)
    except InvalidTopic:
        return False
    return True


def _is_position(value: Any) -> bool:
    return (
        type(value) is dict
        and value.keys() == {"epoch", "seq"}
        and all(type(v) is int and 0 <= v < 2**64 for v in value.values())
    )


def gap(join_ref: str, topic: str, epoch: int, first: int, last: int | None, why: str = "") -> str:
    """``gap``: seqs ``first``..``last`` of ``epoch`` are lost for good (``last`` None:
    how far is unknown, ``why`` says why)."""
    body: dict[str, Any] = {"epoch": epoch, "from": first, "to": last}
    if why:
        body["reason"] = why
    return encode([join_ref, None, topic, "gap", body])


def push(join_ref: str, topic: str, event: str, body: Any, position: Position | None) -> str:
    """A message to a joined socket: ref null, or ``"EPOCH.SEQ"`` on a positioned
    channel (the JS client hands a push's ref to ``on`` callbacks as their 2nd argument)."""
    ref = None if position is None else f"{position[0]}.{position[1]}"
    return encode([join_ref, ref, topic, event, body])


def binary_push(join_ref: str, topic: str, event: str, data: bytes) -> bytes | None:
    """A V2 binary push, ``<<0, jr_len, topic_len, event_len, join_ref, topic, event,
    data>>`` (None: a field over the 255 bytes one length byte holds)."""
    fields = [join_ref.encode(), topic.encode(), event.encode()]
    if any(len(f) > 255 for f in fields):
        return None
    return bytes([0, *map(len, fields)]) + b"".join(fields) + data


def parse(text: str) -> tuple[str | None, str | None, str, str, Any]:
    """``[join_ref, ref, topic, event, payload]``, checked."""
    try:
        frame = json.loads(text)
    except ValueError as exc:
        raise BadFrame(f"not JSON: {exc}") from None
    if type(frame) is not list or len(frame) != 5:
        raise BadFrame("a frame is [join_ref, ref, topic, event, payload]")
    join_ref, ref, topic, event, payload = frame
    if not all(x is None or type(x) is str for x in (join_ref, ref)):
        raise BadFrame("join_ref and ref are strings or null")
    if type(topic) is not str or type(event) is not str:
        raise BadFrame("topic and event are strings")
    return join_ref, ref, topic, event, payload
