"""The gateway and its zdps node: a node that does not answer is said at once (log,
``/status``, ``unreachable`` to joins), and a node restarted on its endpoints is used
again without the gateway or its clients doing anything."""

from __future__ import annotations

import json
import signal

import pytest
from websockets.sync.client import connect

from tests.cluster.harness import Cluster, free_port, wait_for
from tests.cluster.test_gateway import start_gateway
from tests.cluster.test_gateway_limits import joined, status
from zdps import Client

pytestmark = pytest.mark.timeout(120)


def test_a_node_that_does_not_answer_is_said_at_once_and_used_once_it_does(
    cluster: Cluster,
) -> None:
    a = cluster.start("A")
    a.proc.send_signal(signal.SIGTERM)
    assert a.exit_code(30) == 0
    port = free_port()
    _, _, err = cluster.spawn(
        "gateway", "--listen", f"127.0.0.1:{port}", "--node", a.api, name="gw"
    )  # fmt: skip
    url = f"ws://127.0.0.1:{port}/socket/websocket"
    wait_for(lambda: "does not answer" in err.read_text(), 10, "the gateway to say so")
    with connect(f"{url}?vsn=2.0.0", open_timeout=5) as ws:
        ws.send('["1","1","t","phx_join",{}]')
        reply = json.loads(ws.recv(timeout=2))  # at once, not after a timeout
        assert reply[4] == {"status": "error", "response": {"reason": "unreachable"}}
    shown = status(url)
    assert shown["node_answers"] is False, shown
    assert shown["counters"]["refused_node_unreachable"] == 1, shown
    cluster.start("A", same_as=a)
    wait_for(lambda: status(url)["node_answers"], 10, "the gateway to see the node")
    assert f"the zdps node at {a.api} answers" in err.read_text()
    with joined(url) as ws, Client(a.api) as client:
        client.publish("t", '["e",{"n":1}]')
        assert json.loads(ws.recv(timeout=10)) == ["1", None, "t", "e", {"n": 1}]


def test_a_restarted_node_keeps_feeding_the_joined_sockets(cluster: Cluster) -> None:
    a = cluster.start("A")
    url = start_gateway(cluster, a, "gw")
    with joined(url) as ws:
        with Client(a.api) as client:
            client.publish("t", '["e",{"n":1}]')
        assert json.loads(ws.recv(timeout=10))[4] == {"n": 1}
        a.proc.send_signal(signal.SIGTERM)
        assert a.exit_code(30) == 0
        a = cluster.start("A", same_as=a)
        with Client(a.api) as client:
            client.publish("t", '["e",{"n":2}]')
        assert json.loads(ws.recv(timeout=10))[4] == {"n": 2}


def test_a_rejoin_refused_while_the_node_is_down_leaves_no_channel_behind(
    cluster: Cluster,
) -> None:
    a = cluster.start("A")
    url = start_gateway(cluster, a, "gw")
    with joined(url) as ws:
        assert status(url)["channels"] == 1
        a.proc.send_signal(signal.SIGTERM)
        assert a.exit_code(30) == 0
        wait_for(lambda: status(url)["node_answers"] is False, 15, "the node to be missed")
        ws.send('["2","2","t","phx_join",{}]')  # a rejoin closes the old channel first
        assert json.loads(ws.recv(timeout=5))[3] == "phx_close"
        reply = json.loads(ws.recv(timeout=5))
        assert reply[4] == {"status": "error", "response": {"reason": "unreachable"}}
        shown = status(url)
        assert (shown["channels"], shown["topics"]) == (0, 0), shown
