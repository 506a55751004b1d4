"""Per-client permissions: which topics a CURVE client may publish to and subscribe to.

Keyed by the name of the client's key (its ZAP User-Id, ``curve_clients``), read from
the ``permissions`` file (docs/PROTOCOL.md §2.2). Each rule lists topic prefixes: a
topic is allowed if it starts with an ``allow`` prefix and with no ``deny`` prefix;
deny wins, as in NATS. ``""`` is every topic. A client with no rule of its own gets the
rule named ``"*"``, and without that one it may do anything.

A subscription to a prefix is allowed only if every topic it can match is: the prefix
starts with an allowed one and overlaps no denied one (``news.`` is refused when
``news.secret`` is denied, since the XPUB cannot filter a subscription's messages
per subscriber).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EVERYONE = "*"  # the rule of every client without one of its own
MAX_CACHED = 100_000  # (client, topic) answers remembered; beyond that the cache starts over
KEYS = ("publish", "subscribe", "deny_publish", "deny_subscribe")  # lists of prefixes


@dataclass(frozen=True, slots=True)
class Rule:
    """One client's allowed and denied topic prefixes."""

    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    deny_publish: tuple[str, ...] = ()
    deny_subscribe: tuple[str, ...] = ()
    drain: bool = False  # may ask the node to drain and leave


class Permissions:
    """Every client's rule, and the answers already worked out."""

    def __init__(self, rules: dict[str, Rule]) -> None:
        self.rules = rules
        self._cache: dict[tuple[str | None, str, bool], bool] = {}

    @classmethod
    def parse(cls, table: dict[str, Any]) -> Permissions:
        """Rules from a TOML table ``{client: {publish: [prefix, ...], ...}}``; ValueError
        says what is wrong."""
        rules = {}
        for client, entry in table.items():
            if not isinstance(entry, dict):
                raise ValueError(f"permissions for {client!r} must be a table")
            unknown = sorted(set(entry) - {*KEYS, "drain"})
            if unknown:
                raise ValueError(f"permissions for {client!r}: unknown keys {unknown}")
            lists = {}
            for key in KEYS:
                prefixes = entry.get(key, [])
                if not isinstance(prefixes, list) or not all(isinstance(p, str) for p in prefixes):
                    raise ValueError(f"permissions for {client!r}: {key} must be a list of text")
                lists[key] = tuple(prefixes)
            drain = entry.get("drain", False)
            if not isinstance(drain, bool):
                raise ValueError(f"permissions for {client!r}: drain must be true or false")
            rules[client] = Rule(**lists, drain=drain)
        return cls(rules)

    def may_publish(self, client: str | None, topic: str) -> bool:
        return self._allowed(client, topic, True)

    def may_drain(self, client: str | None) -> bool:
        rule = self.rules.get(client or "") or self.rules.get(EVERYONE)
        return rule is None or rule.drain

    def may_subscribe(self, client: str | None, group: bytes) -> bool:
        """Whether a SUB of ``client`` may hold ``group`` (an exact topic or a prefix)."""
        text = group.decode("utf-8", "replace")
        if group.endswith(b"\x00"):
            return self._allowed(client, text[:-1], False)
        return self._allowed(client, "\x00" + text, False)  # NUL: a prefix, never a topic

    def _allowed(self, client: str | None, subject: str, publish: bool) -> bool:
        key = (client, subject, publish)
        answer = self._cache.get(key)
        if answer is None:
            answer = self._work_out(client, subject, publish)
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[key] = answer
        return answer

    def _work_out(self, client: str | None, subject: str, publish: bool) -> bool:
        rule = self.rules.get(client or "") or self.rules.get(EVERYONE)
        if rule is None:
            return True
        allow = rule.publish if publish else rule.subscribe
        deny = rule.deny_publish if publish else rule.deny_subscribe
        if not subject.startswith("\x00"):
            return _starts(subject, allow) and not _starts(subject, deny)
        prefix = subject[1:]
        overlaps = any(prefix.startswith(d) or d.startswith(prefix) for d in deny)
        return _starts(prefix, allow) and not overlaps


def _starts(text: str, prefixes: tuple[str, ...]) -> bool:
    return any(text.startswith(prefix) for prefix in prefixes)
