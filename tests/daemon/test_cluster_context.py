"""The daemon's ZeroMQ context takes a socket per link to every peer it may hold
(zdps/daemon/links.py ``cluster_context``): libzmq's default of 1,023 sockets stopped a
node at about 500 peers, two links each."""

from __future__ import annotations

import pytest
import zmq

from zdps.daemon.links import cluster_context
from zdps.settings import default

pytestmark = pytest.mark.timeout(60)


def test_a_node_of_600_peers_opens_both_links_to_each() -> None:
    ctx = cluster_context(600)
    sockets = []
    try:
        for _ in range(2 * 600):  # 1,200: over libzmq's default
            sockets.append(ctx.socket(zmq.DEALER))
    finally:
        for sock in sockets:
            sock.close(linger=0)
        ctx.term()
    assert len(sockets) == 1200


def test_the_default_max_peers_has_room_for_links_and_redials() -> None:
    ctx = cluster_context(default("max_peers"))
    try:
        assert ctx.get(zmq.MAX_SOCKETS) >= 4 * default("max_peers")
    finally:
        ctx.term()
