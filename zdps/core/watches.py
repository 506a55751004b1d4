"""Member watches: ``zdps members --watch``, pushed after every change (§8.3 ``watch``).

A watch is keyed by the client and the ref of its ``watch`` request. It holds a
monitor on the whole overlay (pg's ``monitor_scope``), and each membership change of a
group that matches its topic, and each ring change, pushes the topic's current
members as an ``event``. Watches end with ``unwatch`` or when the client is gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zdps.core.outbox import Outbox
from zdps.core.overlay import MemberEvent, Overlay
from zdps.core.part import Part
from zdps.core.queues import queues_of
from zdps.core.ring import HashRing
from zdps.topics import group_topic, is_exact

WatchKey = tuple[bytes, int]  # (client, ref of its watch request)


@dataclass(slots=True)
class Watches(Part):
    """Live watches and the members view they push."""

    ring: HashRing
    overlay: Overlay
    _watches: dict[WatchKey, str] = field(default_factory=dict)  # -> topic

    def members(self, topic: str) -> dict[str, Any]:
        """The nodes a publish to ``topic`` reaches, with their subscriber counts, and
        its queue groups' members per node."""
        raw, overlay = topic.encode(), self.overlay
        return {
            "topic": topic,
            "owner": self.ring.owner(topic),
            "nodes": overlay.reach(raw),
            "queues": {
                name.decode(errors="replace"): overlay.members(key)
                for name, key in queues_of(overlay, raw)
            },
        }

    def watch(self, client: bytes, ref: int, topic: str, out: Outbox) -> None:
        """Start (or re-point) a watch; the reply is the members now."""
        key = (client, ref)
        if key not in self._watches:
            self.overlay.monitor_overlay(key)
        self._watches[key] = topic
        out.reply(client, ref, self.members(topic))

    def unwatch(self, client: bytes, ref: int, watch_ref: int, out: Outbox) -> None:
        key = (client, watch_ref)
        self._watches.pop(key, None)
        out.reply(client, ref, self.overlay.demonitor(key))

    def client_gone(self, client: bytes) -> None:
        for key in [k for k in self._watches if k[0] == client]:
            del self._watches[key]
            self.overlay.demonitor(key)

    def on_member_event(self, event: MemberEvent, out: Outbox) -> None:
        topic = self._watches.get(event.watcher)  # type: ignore[arg-type]
        if topic is not None and _matches(event.group, topic):
            self._push(event.watcher, topic, event, out)  # type: ignore[arg-type]

    def ring_changed(self, old_nodes: frozenset[str], now: float, out: Outbox) -> None:
        for key, topic in self._watches.items():
            self._push(key, topic, None, out)

    def _push(self, key: WatchKey, topic: str, event: MemberEvent | None, out: Outbox) -> None:
        body: dict[str, Any] = self.members(topic)
        if event is not None:
            body["event"] = {
                "kind": event.kind,
                "group": group_topic(event.group),
                "prefix": not is_exact(event.group),
                "node": event.node,
                "count": event.count,
            }
        out.event(key[0], key[1], body)

    def __len__(self) -> int:
        return len(self._watches)


def _matches(group: bytes, topic: str) -> bool:
    if is_exact(group):
        return group[:-1] == topic.encode()
    return topic.encode().startswith(group)
