"""Topic names and subscription groups.

A *group* is what a node is a member of in the scope overlay. It is spelled exactly
as a ZeroMQ SUB spells its subscription, so that what the local XPUB reports can be
used as the group key without translation:

* ``b"news\\x00"`` — the exact topic ``news`` (topics never contain NUL);
* ``b"news."``    — every topic that starts with ``news.`` (a prefix);
* ``b""``         — every topic (the firehose).

Subscriptions that start with NUL are reserved for zdps's own control use
(see ``SYNC_PREFIX`` and ``LOST_PREFIX``) and never become groups.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from itertools import repeat

MAX_TOPIC_BYTES = 255
EXACT_SUFFIX = b"\x00"
SYNC_PREFIX = b"\x00zdps.sync."
# Loss notices (docs/PROTOCOL.md §9.6): a SUB subscribes LOST_PREFIX + group to be told
# of messages of that group it may have lost at the node.
LOST_PREFIX = b"\x00zdps.lost."


# Control characters (C0, DEL, C1) break the line formats that print topics (a tab
# separates topic and payload in ``zdps subscribe``), so topics and prefixes refuse them.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


class InvalidTopic(ValueError):
    """A topic name that zdps refuses: empty, with a control character, or too long."""


def check_topic(topic: str) -> bytes:
    """Return the UTF-8 bytes of a valid topic, or raise InvalidTopic saying why."""
    if not isinstance(topic, str):
        raise InvalidTopic(f"topic must be text, not {type(topic).__name__}")
    if not topic:
        raise InvalidTopic("topic is empty")
    return _encode(topic, "topic")


def check_prefix(prefix: str) -> bytes:
    """Return the bytes of a valid prefix; the empty prefix means every topic."""
    return _encode(prefix, "prefix")


def _encode(text: str, what: str) -> bytes:
    control = _CONTROL.search(text)
    if control:
        char = control[0]
        name = "a NUL character" if char == "\x00" else f"the control character {char!r}"
        raise InvalidTopic(f"{what} contains {name}")
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidTopic(f"{what} is not valid Unicode text") from exc
    if len(raw) > MAX_TOPIC_BYTES:
        raise InvalidTopic(f"{what} is {len(raw)} bytes of UTF-8, the limit is {MAX_TOPIC_BYTES}")
    return raw


def exact_group(topic: str) -> bytes:
    """The group (and SUB subscription) for exactly ``topic``."""
    return check_topic(topic) + EXACT_SUFFIX


def prefix_group(prefix: str) -> bytes:
    """The group (and SUB subscription) for every topic starting with ``prefix``."""
    return check_prefix(prefix)


def is_exact(group: bytes) -> bool:
    """True for an exact-topic group, False for a prefix group."""
    return group.endswith(EXACT_SUFFIX)


def group_topic(group: bytes) -> str:
    """The topic or prefix text a group stands for."""
    body = group[:-1] if is_exact(group) else group
    return body.decode("utf-8")


def is_control_subscription(subscription: bytes) -> bool:
    """Subscriptions starting with NUL are zdps control tokens, never groups."""
    return subscription[:1] == b"\x00"


def is_valid_group(group: bytes) -> bool:
    """Whether bytes received from a peer or a SUB form a well-formed group (a sync of a
    million groups checks each: ASCII ones skip the UTF-8 decode)."""
    if is_control_subscription(group):
        return False
    exact = is_exact(group)
    body = group[:-1] if exact else group
    if b"\x00" in body or len(body) > MAX_TOPIC_BYTES or (exact and not body):
        return False
    if body.isascii():
        return True
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def all_valid_groups(groups: Collection[bytes]) -> bool:
    """Whether every one of ``groups`` passes ``is_valid_group``, checked with loops in C
    (a sync of a million groups: 0.1 s instead of 0.7). False says only that some may
    not: then check them one by one."""
    nul = b"\x00"
    if not groups:
        return True
    if set(map(type, groups)) != {bytes} or max(map(len, groups)) > MAX_TOPIC_BYTES:
        return False  # too long, unless an exact group's suffix makes it so: look closer
    if any(map(bytes.startswith, groups, repeat(nul))):
        return False  # a control subscription, or an empty exact group
    # Every NUL must be an exact group's one suffix: as many NULs as groups ending in one.
    if sum(map(bytes.count, groups, repeat(nul))) != sum(map(bytes.endswith, groups, repeat(nul))):
        return False
    joined = b"\n".join(groups)  # valid UTF-8 as a whole iff each part is (ASCII joints)
    if joined.isascii():
        return True
    try:
        joined.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# Queue groups (docs/PROTOCOL.md §5.1): a node's members of queue group NAME on a topic
# or prefix are a count in the scope overlay under a key that no subscription can be,
# yet a valid exact group to any node, so nodes that predate queue groups replicate it
# unread. QUEUE_MARK (the unit separator) is refused in topics and queue names.
QUEUE_MARK = b"\x1f"
MAX_QUEUE_NAME = 64  # bytes of a queue group's name


def check_queue_name(name: str, what: str = "queue group name") -> bytes:
    """The bytes of a valid queue group (or consumer) name: 1-64 bytes, no control
    character."""
    if not isinstance(name, str) or not name:
        raise InvalidTopic(f"a {what} is non-empty text")
    raw = _encode(name, what)
    if len(raw) > MAX_QUEUE_NAME:
        raise InvalidTopic(f"{what} is {len(raw)} bytes, the limit is {MAX_QUEUE_NAME}")
    return raw


def queue_key(name: bytes, subscription: bytes) -> bytes:
    """The overlay key of queue group ``name`` on ``subscription`` (a valid group:
    ``topic\\x00`` or a prefix); InvalidTopic if the two are too long together."""
    exact = is_exact(subscription)
    key = QUEUE_MARK + (b"=" if exact else b"*") + name + QUEUE_MARK
    key += subscription.removesuffix(EXACT_SUFFIX) + EXACT_SUFFIX
    if len(key) - 1 > MAX_TOPIC_BYTES:
        raise InvalidTopic(
            f"a queue group's name and topic are {len(key) - 4} bytes together, "
            f"the limit is {MAX_TOPIC_BYTES - 3}"
        )
    return key


def is_queue_key(group: bytes) -> bool:
    return group[:1] == QUEUE_MARK


def parse_queue_key(key: bytes) -> tuple[bytes, bytes] | None:
    """``(name, subscription)`` of a queue key, None if ``key`` is not a valid one."""
    if key[:1] != QUEUE_MARK or key[1:2] not in (b"=", b"*") or not key.endswith(EXACT_SUFFIX):
        return None
    name, mark, body = key[2:-1].partition(QUEUE_MARK)
    if not mark or not name or QUEUE_MARK in body or (key[1:2] == b"=" and not body):
        return None
    return name, body + EXACT_SUFFIX if key[1:2] == b"=" else body


def matches(subscription: bytes, topic: bytes) -> bool:
    """Whether a publish to ``topic`` reaches ``subscription`` (exact or prefix)."""
    if is_exact(subscription):
        return subscription[:-1] == topic
    return topic.startswith(subscription)


def consumer_key(name: bytes, topic: bytes) -> bytes:
    """The overlay key under which a node counts its members of durable consumer
    ``name`` of ``topic`` (docs/PROTOCOL.md §8.6): a queue key's shape, marked ``c``."""
    key = QUEUE_MARK + b"c" + name + QUEUE_MARK + topic + EXACT_SUFFIX
    if len(key) - 1 > MAX_TOPIC_BYTES:
        raise InvalidTopic(
            f"a consumer's name and topic are {len(key) - 4} bytes together, "
            f"the limit is {MAX_TOPIC_BYTES - 3}"
        )
    return key
