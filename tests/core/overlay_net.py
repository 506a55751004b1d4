"""An in-memory network of sans-IO overlays, standing in for Erlang distribution in tests.

``OverlayNet`` holds named ``Overlay`` instances and one FIFO queue per directed link.
It carries out the actions the overlays return:

* an ``OverlaySend`` is queued on the link ``sender -> peer`` if that link is up, and
  dropped (counted in ``dropped``) otherwise;
* a ``MemberEvent`` is appended to ``events[node]``, in the order it was returned.

A queued message is encoded with ``zdps.wire.pack`` when it is sent and decoded
with ``unpack`` when it is delivered, so a receiver gets what it would off the wire.

Delivery is deterministic: ``step()`` delivers the oldest queued message (by send
order over all links) on a link that is not held; ``run()`` steps until quiescent.
``hold(a, b)`` keeps messages on ``a -> b`` in flight until ``release(a, b)`` or an
explicit ``deliver(a, b)``, which is how tests build races. ``disconnect`` is a
netsplit: both links go down, messages in flight on them are lost, and both sides
see ``peer_down``.

The mapping from pg: ``connect`` is nodeup + discover on both sides, ``disconnect``
is a netsplit (the remote overlay's 'DOWN' on both sides), ``restart`` is an overlay
restart (its peers see it go down and come back), ``join``/``leave`` are local
member changes, and ``inject`` is pg's white-box ``gen_server:cast`` of a crafted
message.

With ``part_groups``, every overlay sends a sync of more groups than that as
``sync_part``s (every peer speaks them).

``sends`` (the ``OverlaySend`` actions among some) and ``group`` (pg's group names as
exact-topic groups) are the small helpers of the pg_SUITE port.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable

from zdps.core.overlay import Action, MemberEvent, Overlay, OverlaySend
from zdps.topics import exact_group, is_exact
from zdps.wire import pack, unpack
from zdps.wire.messages import decode_message

Link = tuple[str, str]
Table = dict[bytes, dict[str, int]]


class OverlayNet:
    """Named overlays joined by in-memory FIFO links; see the module docstring."""

    def __init__(self, *names: str, part_groups: int | None = None) -> None:
        self.part_groups = part_groups  # syncs of more groups go in parts; None: never
        self.overlays: dict[str, Overlay] = {}
        self.events: dict[str, list[MemberEvent]] = {}
        self.delivered = 0
        self.dropped = 0
        self._queues: dict[Link, deque[tuple[int, bytes]]] = {}
        self._up: set[Link] = set()
        self._held: set[Link] = set()
        self._seq = 0
        for name in names:
            self.add(name)

    def __getitem__(self, name: str) -> Overlay:
        return self.overlays[name]

    def add(self, name: str) -> Overlay:
        """Start a new, unconnected overlay ``name``."""
        if name in self.overlays:
            raise ValueError(f"overlay {name!r} already exists")
        self.overlays[name] = self._overlay(name)
        self.events[name] = []
        return self.overlays[name]

    def _overlay(self, name: str) -> Overlay:
        if self.part_groups is None:
            return Overlay(name)
        return Overlay(name, part_groups=self.part_groups)

    # ------------------------------------------------------------------ topology

    def connected(self, a: str, b: str) -> bool:
        """Whether the transport between ``a`` and ``b`` is up."""
        return (a, b) in self._up

    def link_up(self, a: str, b: str) -> None:
        """Bring the transport between ``a`` and ``b`` up, without telling either overlay."""
        self._up |= {(a, b), (b, a)}

    def peer_up(self, node: str, peer: str) -> list[Action]:
        """Bring the link up and tell only ``node``'s overlay that ``peer`` is up."""
        self.link_up(node, peer)
        parts = self.part_groups is not None
        return self.route(node, self.overlays[node].peer_up(peer, parts))

    def peer_down(self, node: str, peer: str) -> list[Action]:
        """Tell only ``node``'s overlay that ``peer`` is down; the transport stays as it is."""
        return self.route(node, self.overlays[node].peer_down(peer))

    def connect(self, a: str, b: str) -> None:
        """nodeup on both sides: each overlay learns the other and queues it a sync."""
        self.peer_up(a, b)
        self.peer_up(b, a)

    def disconnect(self, a: str, b: str) -> None:
        """A netsplit: drop in-flight messages on both links, then peer_down on both sides."""
        for link in ((a, b), (b, a)):
            self._up.discard(link)
            self._held.discard(link)
            self.dropped += len(self._queues.pop(link, ()))
        self.peer_down(a, b)
        self.peer_down(b, a)

    def neighbours(self, name: str) -> list[str]:
        """Scopes whose transport to ``name`` is up, sorted."""
        return sorted(b for a, b in self._up if a == name)

    def restart(self, name: str) -> Overlay:
        """Replace ``name``'s overlay by a new instance: local members and watchers are lost.

        Its peers see it go down and come back up, as pg peers see a restarted overlay.
        """
        neighbours = self.neighbours(name)
        for peer in neighbours:
            self.disconnect(name, peer)
        self.overlays[name] = self._overlay(name)
        for peer in neighbours:
            self.connect(name, peer)
        return self.overlays[name]

    # ------------------------------------------------------------------ local operations

    def join(self, node: str, group: bytes, count: int = 1) -> list[Action]:
        """A local join on ``node``; its broadcast is queued."""
        return self.route(node, self.overlays[node].join(group, count))

    def leave(self, node: str, group: bytes, count: int = 1) -> list[Action]:
        """A local leave on ``node`` (also models the death of a local member)."""
        return self.route(node, self.overlays[node].leave(group, count))

    def inject(self, sender: str, receiver: str, message: list) -> list[Action]:
        """Hand the raw ``message`` to ``receiver`` as if ``sender`` sent it, bypassing the
        links; it is decoded (and checked) as a node decodes what arrives."""
        return self.route(receiver, self.overlays[receiver].handle(sender, decode_message(message)))

    def route(self, node: str, actions: Iterable[Action]) -> list[Action]:
        """Carry out the actions ``node``'s overlay returned; returns them as a list."""
        actions = list(actions)
        for action in actions:
            if isinstance(action, MemberEvent):
                self.events[node].append(action)
            elif isinstance(action, OverlaySend):
                link = (node, action.peer)
                if link in self._up:
                    self._seq += 1
                    self._queues.setdefault(link, deque()).append(
                        (self._seq, pack(action.message.encode()))
                    )
                else:
                    self.dropped += 1
            else:  # pragma: no cover - the overlay returns nothing else
                raise TypeError(f"unexpected action {action!r}")
        return actions

    # ------------------------------------------------------------------ delivery

    def hold(self, a: str, b: str) -> None:
        """Keep messages on ``a -> b`` in flight: ``step``/``run`` skip that link."""
        self._held.add((a, b))

    def release(self, a: str, b: str) -> None:
        """Let ``run`` deliver on ``a -> b`` again."""
        self._held.discard((a, b))

    def in_flight(self, a: str, b: str) -> list[list]:
        """Messages queued on ``a -> b``, oldest first (decoded copies)."""
        return [unpack(frame) for _, frame in self._queues.get((a, b), ())]

    def pending(self) -> int:
        """Number of messages in flight on all links, held or not."""
        return sum(len(queue) for queue in self._queues.values())

    def deliver(self, a: str, b: str) -> list[Action]:
        """Deliver the oldest message on ``a -> b`` (even if held) to ``b``'s overlay."""
        queue = self._queues.get((a, b))
        if not queue:
            raise LookupError(f"nothing in flight on {a} -> {b}")
        _, frame = queue.popleft()
        self.delivered += 1
        return self.route(b, self.overlays[b].handle(a, decode_message(unpack(frame))))

    def step(self) -> Link | None:
        """Deliver the oldest deliverable message; returns its link, or None if idle."""
        ready = [
            (queue[0][0], link)
            for link, queue in self._queues.items()
            if queue and link not in self._held
        ]
        if not ready:
            return None
        _, link = min(ready)
        self.deliver(*link)
        return link

    def run(self, max_steps: int = 1_000_000) -> int:
        """Deliver until no unheld link has messages; returns how many were delivered."""
        for done in range(max_steps):
            if self.step() is None:
                return done
        raise RuntimeError(f"no quiescence after {max_steps} deliveries")

    # ------------------------------------------------------------------ observations

    def take_events(self, node: str, watcher: Hashable | None = None) -> list[tuple]:
        """Remove and return ``node``'s collected events as ``(kind, group, node, count)``.

        With ``watcher``, only that watcher's events are returned (the others are
        discarded too).
        """
        events, self.events[node] = self.events[node], []
        return [
            (e.kind, e.group, e.node, e.count)
            for e in events
            if watcher is None or e.watcher == watcher
        ]

    def table(self, node: str) -> Table:
        """``node``'s whole replicated table: group -> {member node: count}."""
        overlay = self.overlays[node]
        return {group: overlay.members(group) for group in overlay.which_groups()}

    def views(self, group: bytes) -> dict[str, dict[str, int]]:
        """Every overlay's view of ``group``."""
        return {name: overlay.members(group) for name, overlay in self.overlays.items()}


def brute_reach(table: Table, topic: bytes) -> dict[str, int]:
    """``reach`` computed the slow way: sum the exact group and every matching prefix."""
    found: dict[str, int] = {}
    for group, nodes in table.items():
        matches = group[:-1] == topic if is_exact(group) else topic.startswith(group)
        if matches:
            for node, count in nodes.items():
                found[node] = found.get(node, 0) + count
    return found


def sends(actions: list) -> list[OverlaySend]:
    """The OverlaySend actions among ``actions``."""
    return [a for a in actions if isinstance(a, OverlaySend)]


def group(name: str) -> bytes:
    """pg's atom group names become exact-topic groups."""
    return exact_group(name)
