"""`zdps gateway` driven by websocat, a WebSocket client nobody here wrote: the seed's
session (issue 13) verbatim, across two gateways on two nodes."""

from __future__ import annotations

import json
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.sync.client import connect

from tests.cluster.harness import Cluster, NodeProc, free_port, wait_for
from zdps import Client

pytestmark = pytest.mark.timeout(90)

WEBSOCAT = shutil.which("websocat") or str(Path(sys.executable).parent / "websocat")
JOIN = '["1", "1", "topics:matrix", "phx_join", {}]'
JOINED = '["1","1","topics:matrix","phx_reply",{"status":"ok","response":{}}]'
PUBLISH = (
    '["1", "1", "topics:matrix", "publish", ["event", { "message": "red pill or blue pill?"}]]'
)
EVENT = '["1",null,"topics:matrix","event",{"message":"red pill or blue pill?"}]'


class Websocat:
    """``websocat -t URL``: a line in is a text frame out, a frame in is a line out."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [WEBSOCAT, "-t", url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def next(self, timeout: float = 10) -> str:
        return self.lines.get(timeout=timeout)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


def start_gateway(cluster: Cluster, node: NodeProc, name: str, *flags: str) -> str:
    port = free_port()
    cluster.spawn("gateway", "--listen", f"127.0.0.1:{port}", "--node", node.api, *flags, name=name)

    def listening() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, 15, f"{name} to listen")
    return f"ws://127.0.0.1:{port}/socket/websocket"


@pytest.fixture
def two_gateways(cluster: Cluster) -> tuple[str, str, NodeProc]:
    a = cluster.start("A")
    b = cluster.start("B", seeds=[a])
    cluster.wait_mesh()
    return start_gateway(cluster, a, "gw-a"), start_gateway(cluster, b, "gw-b"), a


def test_the_seed_session_verbatim_across_two_gateways(cluster: Cluster, two_gateways) -> None:
    url_a, url_b, a = two_gateways
    first, second = Websocat(f"{url_a}?vsn=2.0.0"), Websocat(f"{url_b}?vsn=2.0.0")
    try:
        first.send(JOIN)
        assert first.next() == JOINED
        second.send(JOIN)
        assert second.next() == JOINED
        second.send(PUBLISH)
        assert first.next() == EVENT
        got = {second.next(), second.next()}
        assert got == {
            EVENT,
            '["1","1","topics:matrix","phx_reply",{"status":"ok","response":{"seq":1}}]',
        }
        published = cluster.run(
            "publish", "topics:matrix", '{"message":"from zdps"}', "--node", a.api
        )
        assert published.returncode == 0, published.stderr
        pushed = '["1",null,"topics:matrix","message",{"message":"from zdps"}]'
        assert first.next() == pushed and second.next() == pushed
        first.send('[null, "9", "phoenix", "heartbeat", {}]')
        assert first.next() == '[null,"9","phoenix","phx_reply",{"status":"ok","response":{}}]'
    finally:
        first.close()
        second.close()


def test_other_versions_and_bad_frames_are_refused(two_gateways) -> None:
    url_a, _, _ = two_gateways
    with pytest.raises(InvalidStatus) as refused:
        connect(url_a, open_timeout=5)  # no vsn: V1, which this gateway does not speak
    assert refused.value.response.status_code == 403
    assert b"vsn=2.0.0" in refused.value.response.body
    with connect(f"{url_a}?vsn=2.0.0", open_timeout=5) as ws:
        ws.send("this is not a V2 frame")
        with pytest.raises(ConnectionClosedError) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007


def test_deleting_the_topic_closes_its_channels(cluster: Cluster, two_gateways) -> None:
    url_a, _, a = two_gateways
    client = Websocat(f"{url_a}?vsn=2.0.0")
    try:
        client.send('["3", "4", "doomed", "phx_join", {}]')
        assert client.next() == '["3","4","doomed","phx_reply",{"status":"ok","response":{}}]'
        deleted = cluster.run("topic", "delete", "doomed", "--node", a.api)
        assert deleted.returncode == 0, deleted.stderr
        assert client.next() == '["3","3","doomed","phx_close",{}]'
        client.send('["3", "5", "doomed", "publish", ["e", {}]]')
        assert '"reason":"unmatched topic"' in client.next()
    finally:
        client.close()


def test_a_rejoin_with_since_gets_what_it_missed_in_order_then_live(
    cluster: Cluster, two_gateways
) -> None:
    """Beyond Phoenix: history after the given position, a gap where history no longer
    has it, each push with its position as ref, then the live messages."""
    _, url_b, a = two_gateways
    created = cluster.run(
        "topic", "create", "short", "--history", "3", "--ttl", "60", "--node", a.api
    )
    assert created.returncode == 0, created.stderr
    lines = "".join(f'{{"n":{i}}}\n' for i in range(1, 11))
    for topic in ("rec", "short"):
        assert cluster.run("publish", topic, "--node", a.api, input=lines).returncode == 0
    with Client(a.api) as client:  # each topic has epochs of its own
        epoch, short = (client.history(t, since=0)["entries"][0][0] for t in ("rec", "short"))
    client_b = Websocat(f"{url_b}?vsn=2.0.0")
    try:
        since = json.dumps({"since": {"epoch": epoch, "seq": 7}})
        client_b.send(f'["1", "1", "rec", "phx_join", {since}]')
        assert client_b.next() == '["1","1","rec","phx_reply",{"status":"ok","response":{}}]'
        for n in (8, 9, 10):
            assert client_b.next() == f'["1","{epoch}.{n}","rec","message",{{"n":{n}}}]'
        assert cluster.run("publish", "rec", '{"n":11}', "--node", a.api).returncode == 0
        assert client_b.next() == f'["1","{epoch}.11","rec","message",{{"n":11}}]'
        since = json.dumps({"since": {"epoch": short, "seq": 2}})
        client_b.send(f'["2", "2", "short", "phx_join", {since}]')
        assert client_b.next() == '["2","2","short","phx_reply",{"status":"ok","response":{}}]'
        gap = {"epoch": short, "from": 3, "to": 7}
        assert json.loads(client_b.next()) == ["2", None, "short", "gap", gap]
        for n in (8, 9, 10):
            assert client_b.next() == f'["2","{short}.{n}","short","message",{{"n":{n}}}]'
    finally:
        client_b.close()


def test_what_the_gateway_itself_lost_is_a_gap_on_positioned_channels(cluster: Cluster) -> None:
    """The gateway stopped (SIGSTOP) while its node's queue for it overflows, on a topic
    that keeps no history: its zdps subscription reports the loss, and a channel joined
    with since hears it as a gap event."""
    a = cluster.start("A", pub_hwm=50)
    url = start_gateway(cluster, a, "gw")
    gateway = cluster.procs[-1]
    create = ("topic", "create", "lossy", "--history", "0", "--ttl", "60", "--node", a.api)
    assert cluster.run(*create).returncode == 0
    client = Websocat(f"{url}?vsn=2.0.0")
    try:
        client.send('["1", "1", "lossy", "phx_join", {"since": null}]')
        assert client.next() == '["1","1","lossy","phx_reply",{"status":"ok","response":{}}]'
        gateway.send_signal(signal.SIGSTOP)
        lines = "".join(f"{i}\n" for i in range(5000))
        assert cluster.run("publish", "lossy", "--node", a.api, input=lines).returncode == 0
        gateway.send_signal(signal.SIGCONT)
        while True:
            frame = json.loads(client.next())
            if frame[3] == "gap":
                break
        assert frame[0] == "1" and frame[4]["to"] >= frame[4]["from"] >= 1, frame
    finally:
        gateway.send_signal(signal.SIGCONT)
        client.close()
