"""A node of another protocol version dials a real node (docs/PROTOCOL.md §11): the
node logs why it refuses it, and tells it why, in a hello the other side can read."""

from __future__ import annotations

import pytest
import zmq

from tests.cluster.harness import Cluster, free_port, wait_for
from zdps.wire.codec import PROTOCOL_VERSION, pack, unpack

pytestmark = pytest.mark.timeout(60)


def test_a_node_of_the_next_version_is_refused_and_told_why(cluster: Cluster) -> None:
    a = cluster.start("a")
    ctx = zmq.Context()
    try:
        listener = ctx.socket(zmq.ROUTER)  # the other node's cluster socket
        listener.setsockopt(zmq.LINGER, 0)
        advertise = f"tcp://127.0.0.1:{free_port()}"
        listener.bind(advertise)
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(a.cluster)
        hello = {"advertise": advertise, "dialed": a.cluster, "reply": True, "protocol": 3}
        future = [PROTOCOL_VERSION + 1, "default", "v3-node", 7, [["hello", hello], ["x", {}]]]
        dealer.send(pack(future))
        assert listener.poll(10_000), "no answer from the node"
        _identity, frame = listener.recv_multipart()
    finally:
        ctx.destroy(0)
    version, _scope, sender, _incarnation, messages = unpack(frame)
    assert (version, sender) == (PROTOCOL_VERSION, "a")
    (kind, body), *_ = messages
    assert kind == "hello" and body["echo"] == a.cluster and body["reply"] is False
    assert body["refused"] == f"it speaks protocol {PROTOCOL_VERSION + 1}, this node 2"
    assert body["protocol"] == PROTOCOL_VERSION and "fwd" in body["kinds"]
    wait_for(lambda: "incompatible_peer node=v3-node" in a.logs(), 10, "the log line")
    assert a.status()["errors"] == {"bad_version": 1} and a.alive_peers() == set()
