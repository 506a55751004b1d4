"""Limits on a real node (docs/PROTOCOL.md §10): a client connection past max_clients is
refused at its handshake and counted, the ones admitted go on; a client over
max_publish_rate is refused ``rate_limited``."""

from __future__ import annotations

import pytest

from tests.cluster.harness import Cluster, NodeProc, wait_for
from zdps import Client, ZdpsError

pytestmark = pytest.mark.timeout(60)


def admitted(node: NodeProc) -> Client:
    """A client the node let in: tried afresh until one is (a connection refused at its
    handshake stays refused, and the harness's own may not have closed yet)."""

    def attempt() -> Client | None:
        client = Client(node.api, timeout=1)
        try:
            client.status()
        except ZdpsError:
            client.close(linger=0)
            return None
        return client

    return wait_for(attempt, 10, "a client to be let in")


def test_a_connection_past_max_clients_is_refused_and_counted(cluster: Cluster) -> None:
    node = cluster.start("A", max_clients=2)
    with admitted(node) as first, admitted(node) as second:
        with pytest.raises(ZdpsError), Client(node.api, timeout=1) as third:
            third.status()
        errors = wait_for(lambda: first.status()["errors"].get("too_many_clients"), 10, "count")
        assert errors >= 1 and "already 2 client connections" in node.logs()
        assert second.publish("t", b"still served").seq == 1
        said = cluster.run("status", "--node", node.api, "--timeout", "3")
        assert said.returncode == 1 and "refused this client at its handshake" in said.stderr
    wait_for(lambda: node.status(), 10, "room again once those two closed")


def test_a_client_over_max_publish_rate_is_refused(cluster: Cluster) -> None:
    node = cluster.start("A", max_publish_rate=100)
    with node.client() as client:
        outcomes = list(client.publish_many([("t", b"m")] * 300, window=300, batch=50))
        refused = [o for o in outcomes if isinstance(o, ZdpsError)]
        assert refused and all(o.code == "rate_limited" for o in refused)
        assert node.status()["errors"]["rate_limited"] >= 1
