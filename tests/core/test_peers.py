"""The membership core's peer table (zdps/core/peers.py): the alive peers, the view
digest, the joining peers and the node at each endpoint it keeps are always those the
table gives afresh.

* after every kind of change to the table: a peer joining, becoming alive, replaced by
  a new life, deleted or popped;
* in a ``Membership`` fed hellos, peer lists, pings, byes, verdicts and timers.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.helpers import hello, peer_events, verdict
from zdps.core.membership import Membership
from zdps.core.membership_config import MembershipConfig
from zdps.core.peers import Peer, PeerState, PeerTable
from zdps.core.ring import node_set_digest
from zdps.core.swim import Swim, SwimConfig
from zdps.wire import DEAD, PEERS, PING
from zdps.wire.gossip import Bye
from zdps.wire.messages import decode_message

pytestmark = pytest.mark.timeout(60)

NODES = "bcde"


def fresh(table: PeerTable) -> tuple[list[str], str, dict, list[Peer], dict[str, str]]:
    """The alive peers, the view digest, the peer list, the joining peers and the node at
    each endpoint, computed from the table."""
    alive = [p.node for p in table.values() if p.state is PeerState.ALIVE]
    peer_list = {node: (table[node].endpoint, table[node].incarnation) for node in alive}
    joining = sorted((p for p in table.values() if p.state is PeerState.JOINING), key=by_node)
    at = {p.endpoint: p.node for p in table.values()}
    return alive, node_set_digest([*alive, table.node]), peer_list, joining, at


def kept(table: PeerTable) -> tuple[list[str], str, dict, list[Peer], dict[str, str]]:
    kept_ones = table.alive(), table.view_digest(), table.peer_list()
    return (*kept_ones, sorted(table.joining(), key=by_node), table.by_endpoint())


def by_node(peer: Peer) -> str:
    return peer.node


@settings(max_examples=200, deadline=None)
@given(
    changes=st.lists(
        st.tuples(
            st.sampled_from(["joining", "alive", "del", "pop"]),
            st.sampled_from(NODES),
            st.integers(1, 2),  # an incarnation
        ),
        max_size=40,
    )
)
def test_what_the_table_keeps_follows_every_change(changes: list) -> None:
    table = PeerTable("a")
    for change, node, incarnation in changes:
        if change in ("joining", "alive"):
            endpoint = f"inproc://{node}/{incarnation}"
            table[node] = Peer(node, endpoint, incarnation, PeerState(change), 0.0)
        elif change == "del" and node in table:
            del table[node]
        elif change == "pop":
            held = table.get(node)
            assert table.pop(node, None) is held
        assert kept(table) == fresh(table)
    with pytest.raises(KeyError):
        del table["z"]


EVENTS = ["hello", "peers", "ping", "bye", DEAD, "tick"]


@settings(max_examples=200, deadline=None)
@given(events=peer_events(EVENTS, NODES, (1, 2), [0.0, 0.1, 1.0, 3.0], 40))  # incarnations
def test_a_membership_s_view_is_always_that_of_its_table(events: list) -> None:
    config = MembershipConfig(heartbeat_interval=0.2, join_timeout=2.0)
    m = Membership("a", 1, "inproc://a", Swim("a", 1, SwimConfig()), [], config)
    now = 0.0
    for kind, node, other, incarnation, step in events:
        now += step
        heard_of = {other: [f"inproc://{other}", incarnation]}
        if kind == "hello":
            m.handle(node, incarnation, hello(node, heard_of), now)
        elif kind == "peers":
            m.handle(node, incarnation, decode_message([PEERS, heard_of]), now)
        elif kind == "ping":  # from a stranger too: it is dialed
            ping = {"view": "other", "endpoint": f"inproc://{node}"}
            m.handle(node, incarnation, decode_message([PING, ping]), now)
        elif kind == "bye":
            m.handle(node, incarnation, Bye(), now)
        elif kind == DEAD:
            m.handle(node, 1, verdict(DEAD, other, incarnation), now)
        else:
            m.tick(now)
        assert kept(m.peers) == fresh(m.peers)
        assert m.alive() == fresh(m.peers)[0]
