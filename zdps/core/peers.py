"""The membership core's peer table: a peer as it holds it, and what it reads off the
table for every frame, kept until the table changes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from zdps.core.ring import node_set_digest
from zdps.wire.gossip import PeerList


class PeerState(StrEnum):
    JOINING = "joining"  # learned of, hello sent, no hello heard back yet
    ALIVE = "alive"


@dataclass(slots=True)
class Peer:
    node: str
    endpoint: str
    incarnation: int
    state: PeerState  # changed by replacing the peer in its table, never in place
    since: float
    last_hello: float = 0.0


class PeerTable(dict[str, Peer]):
    """Node id: ``Peer``, with the alive peers, the view digest and the peer list they make.

    Every ping received is compared with this node's view digest, every turn may ask
    who is alive, every hello carries the peer list: computed afresh, that is a scan (and
    a sort and a hash of N ids) per frame, O(N²) a second in a full mesh. They change
    only when a peer becomes alive or stops being so, so they are computed at the first
    use after such a change. Entries change by assignment, ``del`` and ``pop`` only,
    which tell the caches.
    """

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node  # this node: in its view, never in its table
        self._alive: list[str] | None = None  # in table order
        self._view: str | None = None
        self._list: PeerList | None = None
        self._joining: dict[str, Peer] = {}  # kept as entries change: few, read every tick
        self._at: dict[str, str] | None = None  # made again after any change

    def __setitem__(self, node: str, peer: Peer) -> None:
        old = self.get(node)
        if peer.state is PeerState.ALIVE or (old is not None and old.state is PeerState.ALIVE):
            self._alive_changed()
        self._at = None
        if peer.state is PeerState.JOINING:
            self._joining[node] = peer
        else:
            self._joining.pop(node, None)
        super().__setitem__(node, peer)

    def __delitem__(self, node: str) -> None:
        self.pop(node)

    def pop(self, node: str, *default: Peer | None) -> Peer | None:  # type: ignore[override]
        peer = super().pop(node, *default)
        if peer is not None and peer.state is PeerState.ALIVE:
            self._alive_changed()
        self._at = None
        self._joining.pop(node, None)
        return peer

    def joining(self) -> list[Peer]:
        """The peers said hello to and not heard back from."""
        return list(self._joining.values())

    def by_endpoint(self) -> dict[str, str]:
        """Endpoint: the node there (kept: not to be changed)."""
        if self._at is None:
            self._at = {p.endpoint: p.node for p in self.values()}
        return self._at

    def alive(self) -> list[str]:
        """Ids of the peers alive, in table order (kept: not to be changed)."""
        if self._alive is None:
            self._alive = [p.node for p in self.values() if p.state is PeerState.ALIVE]
        return self._alive

    def view_digest(self) -> str:
        """Identifies the set of live nodes (this one included), as the ring digest does."""
        if self._view is None:
            self._view = node_set_digest([*self.alive(), self.node])
        return self._view

    def peer_list(self) -> PeerList:
        """The alive peers as hellos and ``peers`` carry them (kept: not to be changed)."""
        if self._list is None:
            self._list = {
                node: (self[node].endpoint, self[node].incarnation) for node in self.alive()
            }
        return self._list

    def _alive_changed(self) -> None:
        self._alive = self._view = self._list = None
