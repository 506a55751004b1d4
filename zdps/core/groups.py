"""Group membership as the node sees it: local subscriptions in, the overlay's news out.

The scope overlay (``overlay.py``, Erlang pg's model, docs/PROTOCOL.md §5) keeps every
node's subscriber counts per group. This part feeds it: the XPUBs' (un)subscriptions,
peers' ``sync``/``update``/``resync``, and the digest a ``ping`` carries, which asks for
a full sync when it differs from what is held for that peer. What the overlay decides
leaves as messages to peers (updates merged in the outbox) and as member events for
the watches. Sync tokens (§9.4) are not groups: they go to the subscribe barrier.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from zdps.core.barrier import Barriers
from zdps.core.outbox import Outbox
from zdps.core.overlay import MemberEvent, NotJoined, Overlay, OverlaySend
from zdps.core.part import Part
from zdps.core.scope_digests import is_sum
from zdps.core.watches import Watches
from zdps.settings import default
from zdps.topics import SYNC_PREFIX, is_control_subscription, is_queue_key, is_valid_group
from zdps.wire import gossip
from zdps.wire.errors import E_INVALID_TOPIC, E_TOO_MANY_GROUPS


@dataclass(slots=True)
class Groups(Part):
    """Local subscriptions and peers' group messages, into the overlay and back out."""

    overlay: Overlay
    endpoint_of: Callable[[str], str | None]
    barriers: Barriers
    watches: Watches
    counters: dict[str, int]
    bad_input: Callable[[str, str], None]
    max_groups: int = default("max_groups")  # local groups at most (a memory bound)
    max_topic: int = default("max_topic")  # bytes of a local subscription's topic or prefix
    sorted_peers: set[str] = field(default_factory=set)  # their pings: the sorted digest
    parts_peers: set[str] = field(default_factory=set)  # they speak ``sync_part`` (§5)

    def on_subscription(
        self, subscription: bytes, subscribed: bool, now: float, out: Outbox
    ) -> bool:
        """A local SUB connection subscribed to a group it did not hold, or unsubscribed
        from one it held (``zdps/core/local_subscriptions.py`` sorts that out); False
        if the subscription does not count: a sync token, not a valid group, or a
        group over ``max_groups``."""
        if is_control_subscription(subscription):
            if subscribed and subscription.startswith(SYNC_PREFIX):
                token = subscription[len(SYNC_PREFIX) :].decode("utf-8", "replace")
                self.barriers.token_seen(token, now, out)
            return False
        if not self.valid(subscription):
            return False
        if subscribed:
            overlay = self.overlay
            if overlay.local_count(subscription) == 0 and overlay.local_groups >= self.max_groups:
                why = f"subscription {subscription[:64]!r}: already {self.max_groups} groups here"
                self.bad_input(E_TOO_MANY_GROUPS, why)
                return False
            self.apply(overlay.join(subscription), out)
        else:
            # The daemon sends only unsubscribes of groups a connection held; other feeds may not.
            with contextlib.suppress(NotJoined):
                self.apply(self.overlay.leave(subscription), out)
        return True

    def valid(self, group: bytes, what: str = "subscription") -> bool:
        """Whether a local SUB may hold ``group`` (a ``what``): a valid group within
        ``max_topic``; if not, it is counted and logged as ``invalid_topic``."""
        if not is_valid_group(group) or is_queue_key(group):  # queue keys: queue_join's
            self.bad_input(E_INVALID_TOPIC, f"{what} {group[:64]!r} is not a topic")
            return False
        if len(group.removesuffix(b"\x00")) > self.max_topic:
            why = f"{what} {group[:64]!r} is over max_topic ({self.max_topic} bytes)"
            self.bad_input(E_INVALID_TOPIC, why)
            return False
        return True

    def on_counts(self, sender: str, message: Any, now: float, out: Outbox) -> None:
        """A peer's ``sync`` (all its counts), ``sync_part`` or ``update`` (some)."""
        overlay = self.overlay
        self.apply(overlay.handle(sender, message), out)
        if type(message) is gossip.SyncPart:
            self.counters["sync_parts_lost"] = overlay.parts_lost

    def on_resync(self, sender: str, message: gossip.Resync, now: float, out: Outbox) -> None:
        """A peer holds other counts of ours than we have: send it all of them."""
        self.apply(self.overlay.peer_up(sender, sender in self.parts_peers), out)

    def check_digest(self, sender: str, ping: gossip.Ping, out: Outbox) -> None:
        """A peer's memberships differ from what we hold for it: ask it for a sync. A
        peer whose digest is of the sorted form gets that form too (scope_digests.py)."""
        digest = ping.scope_digest
        if digest is None:
            return
        sorted_form = not is_sum(digest)
        if sorted_form:
            self.sorted_peers.add(sender)
        else:
            self.sorted_peers.discard(sender)
        if digest != self.overlay.peer_digest(sender, sorted_form):
            endpoint = self.endpoint_of(sender)
            if endpoint is not None:
                out.send(endpoint, gossip.Resync())
                self.counters["resyncs_asked"] += 1

    def peer_up(self, node: str, out: Outbox, parts: bool = False) -> None:
        """A peer came up: it gets all our counts (pg's discover); in parts if it speaks
        them (``parts``)."""
        if parts:
            self.parts_peers.add(node)
        else:
            self.parts_peers.discard(node)
        self.apply(self.overlay.peer_up(node, parts), out)

    def peer_down(self, node: str, out: Outbox) -> None:
        self.sorted_peers.discard(node)
        self.parts_peers.discard(node)
        self.apply(self.overlay.peer_down(node), out)

    def scope_digest(self, peer: str) -> str:
        """The digest of our counts that ``peer``'s pings get."""
        return self.overlay.local_digest(peer in self.sorted_peers)

    def apply(self, actions: list, out: Outbox) -> None:
        """Carry out what the overlay decided."""
        for action in actions:
            if isinstance(action, OverlaySend):
                endpoint = self.endpoint_of(action.peer)
                if endpoint is not None:
                    if type(action.message) is gossip.Update:
                        out.update(endpoint, action.message)
                    else:
                        out.send(endpoint, action.message)
            elif isinstance(action, MemberEvent):
                self.watches.on_member_event(action, out)
