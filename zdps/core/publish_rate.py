"""The optional publish rate per client (``max_publish_rate``, docs/PROTOCOL.md §10).

A token bucket per client connection: ``rate`` messages a second, in bursts of up to
one second's worth (a larger batch goes once the bucket is full, and is paid back). A
publish entry that finds too few tokens is refused whole with ``rate_limited`` (and
counted); the client may send it again later. Off (None) by default: flow control
(§7.7) already slows every publisher to what the cluster takes, so this is for sharing
a node fairly between clients, not for protecting it.
"""

from __future__ import annotations

MAX_CLIENTS = 100_000  # buckets kept; beyond that, idle clients' go, else the oldest
IDLE = 60.0  # seconds after which an idle client's bucket may go (it is full by then)


class PublishRate:
    """Tokens per client: ``take`` spends them, or says there are not enough."""

    def __init__(self, rate: int) -> None:
        assert rate > 0
        self.rate = rate
        self._buckets: dict[bytes, list[float]] = {}  # client -> [tokens, when last filled]

    def take(self, client: bytes, n: int, now: float) -> bool:
        """Spend ``n`` tokens of ``client``'s bucket if it holds them. A batch larger
        than the bucket goes when the bucket is full, and leaves it owing the rest."""
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= MAX_CLIENTS:
                self._prune(now)
            bucket = self._buckets[client] = [float(self.rate), now]
        tokens = min(float(self.rate), bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens < min(n, self.rate):
            bucket[0] = tokens
            return False
        bucket[0] = tokens - n
        return True

    def forget(self, client: bytes) -> None:
        self._buckets.pop(client, None)

    def _prune(self, now: float) -> None:
        """Drop the buckets of idle clients; if none is idle, the oldest one."""
        buckets = self._buckets
        for client in [c for c, (_, last) in buckets.items() if now - last > IDLE]:
            del buckets[client]
        if len(buckets) >= MAX_CLIENTS:
            del buckets[next(iter(buckets))]
