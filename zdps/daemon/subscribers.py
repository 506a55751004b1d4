"""Which topics the raw PUB has subscribers for: the daemon's copy of its XPUB's filter.

Expanding a batch into three-frame messages is the one loop of the data path that runs
per message (``delivery.py``), so a batch no raw SUB subscribed to is not expanded; the
batch PUB gets every batch whole, which costs three frames. The XPUB reports every
subscribe and unsubscribe (XPUB_VERBOSER), and a SUB filter is a byte prefix of the
topic frame (``b"news\\x00"`` exactly, ``b"news."`` or ``b""`` as prefixes), so counting
them here mirrors libzmq's own filter. A count left too high (a SUB that subscribed one
group twice, docs/PROTOCOL.md §12) only costs an expansion nobody receives.
"""

from __future__ import annotations

MAX_CACHED = 100_000  # topics whose answer is remembered; beyond that the cache starts over


class SubscriberFilter:
    """Subscription counts of one XPUB, and whether a topic matches any of them."""

    def __init__(self) -> None:
        self._exact: dict[bytes, int] = {}  # b"topic\x00" -> subscriptions
        self._prefixes: dict[bytes, int] = {}  # b"prefix" -> subscriptions
        self._cache: dict[str, bool] = {}

    def update(self, group: bytes, subscribed: bool) -> None:
        """One subscribe (or unsubscribe) as the XPUB reported it."""
        table = self._exact if group.endswith(b"\x00") else self._prefixes
        count = table.get(group, 0) + (1 if subscribed else -1)
        if count > 0:
            table[group] = count
        else:
            table.pop(group, None)
        self._cache.clear()

    def wants(self, topic: str) -> bool:
        """Whether a message of ``topic`` reaches some subscriber of this XPUB."""
        wanted = self._cache.get(topic)
        if wanted is None:
            frame = topic.encode() + b"\x00"
            wanted = frame in self._exact or any(frame.startswith(p) for p in self._prefixes)
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[topic] = wanted
        return wanted
