"""Which groups each SUB connection of one XPUB holds, so that local interest is exact.

A libzmq SUB passes on every subscribe, duplicates included, but an unsubscribe only
when its last subscription to that group is undone; the XPUB reports a disconnected
SUB's subscriptions once each. Counting those reports leaves a group counted after its
last SUB is gone (a ghost group). So the node keeps, per connection, the *set* of
groups it subscribed (a duplicate adds nothing, an unsubscribe of a group it does not
hold removes nothing) and drops the whole set when the connection closes. A group's
local count is then the number of connections holding it, exactly (docs/PROTOCOL.md
§9.3).

Loss-notice subscriptions (§9.6) are held the same way (they count toward a
connection's limit), though they are not groups. Connections are named by what the IO
layer knows of them (a file descriptor, reused
after a close); ``opened`` and ``closed`` come from the socket's monitor. Connections
without a name (inproc) share the name None, which never closes.
"""

from __future__ import annotations

from enum import Enum

Connection = int | None


class Verdict(Enum):
    """What a subscribe means for the count of its group."""

    NEW = "new"  # the connection did not hold the group: the count goes up, if allowed
    HELD = "held"  # a duplicate: nothing changes
    GONE = "gone"  # the connection has closed: its subscriptions count for nothing
    TOO_MANY = "too_many"  # the connection already holds its limit of groups


class LocalSubscriptions:
    """The groups of every open SUB connection of one XPUB."""

    def __init__(self, max_per_connection: int) -> None:
        self.max_per_connection = max_per_connection
        self._held: dict[Connection, set[bytes]] = {None: set()}

    def opened(self, connection: int) -> list[bytes]:
        """A connection was accepted; the groups of one that had its name and was never
        seen closing (they no longer count) are returned."""
        left = self.closed(connection)
        self._held[connection] = set()
        return left

    def closed(self, connection: int) -> list[bytes]:
        """A connection closed: the groups it held no longer count (sorted)."""
        return sorted(self._held.pop(connection, ()))

    def subscribe(self, connection: Connection, group: bytes) -> Verdict:
        """What a subscribe to ``group`` on ``connection`` would do; ``add`` makes it so."""
        held = self._held.get(connection)
        if held is None:
            return Verdict.GONE
        if group in held:
            return Verdict.HELD
        if len(held) >= self.max_per_connection:
            return Verdict.TOO_MANY
        return Verdict.NEW

    def add(self, connection: Connection, group: bytes) -> None:
        assert self.subscribe(connection, group) is Verdict.NEW
        self._held[connection].add(group)

    def unsubscribe(self, connection: Connection, group: bytes) -> bool:
        """An unsubscribe: True if the connection held ``group`` (its count goes down)."""
        held = self._held.get(connection)
        if held is None or group not in held:
            return False
        held.remove(group)
        return True

    @property
    def connections(self) -> int:
        """Open connections known by name."""
        return len(self._held) - 1

    @property
    def subscriptions(self) -> int:
        """Groups held, summed over the connections."""
        return sum(len(held) for held in self._held.values())
