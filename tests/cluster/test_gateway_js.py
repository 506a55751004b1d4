"""`zdps gateway` driven by the official Phoenix JavaScript client (npm `phoenix`, with
npm `ws` as its transport) under Node: join, push with a reply, events from zdps,
heartbeats, leave."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from tests.cluster.harness import Cluster
from tests.cluster.test_gateway import start_gateway

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        shutil.which("node") is None or shutil.which("npm") is None, reason="needs Node and npm"
    ),
]

CLIENT = Path(__file__).with_name("phoenix_client.js")


@pytest.fixture(scope="module")
def npm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """npm `phoenix` 1.8 and `ws` 8, installed for this run from the npm registry."""
    directory = tmp_path_factory.mktemp("npm")
    done = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "phoenix@1.8", "ws@8"],
        cwd=directory, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shutil.copy(CLIENT, directory)
    return directory


class NodeClient:
    def __init__(self, npm_dir: Path, url: str, topic: str, *mode: str) -> None:
        self.proc = subprocess.Popen(
            ["node", CLIENT.name, url, topic, *mode], cwd=npm_dir, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.said: queue.Queue[dict] = queue.Queue()
        self.heartbeats = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.said.put(json.loads(line))

    def next(self, timeout: float = 10) -> dict:
        """What it said next, heartbeat replies aside (``heartbeats`` counts them)."""
        while True:
            said = self.said.get(timeout=timeout)
            if "heartbeat" not in said:
                return said
            assert said == {"heartbeat": "ok"}, said
            self.heartbeats += 1

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


def test_the_official_phoenix_client_joins_pushes_receives_and_leaves(
    cluster: Cluster, npm_dir: Path
) -> None:
    a = cluster.start("A")
    url = start_gateway(cluster, a, "gw").removesuffix("/websocket")  # the client adds it
    client = NodeClient(npm_dir, url, "topics:js")
    try:
        assert client.next() == {"joined": {}}
        got = [client.next(), client.next()]
        assert {"event": {"message": "from js"}} in got and {"published": {"seq": 1}} in got
        body = '{"message":"from zdps"}'
        published = cluster.run("publish", "topics:js", body, "--node", a.api)
        assert published.returncode == 0, published.stderr
        assert client.next() == {"message": {"message": "from zdps"}}
        while client.heartbeats < 4:  # each answered: no reconnect, no second join
            said = client.said.get(timeout=5)
            assert said == {"heartbeat": "ok"}, said
            client.heartbeats += 1
        assert client.proc.stdin is not None
        client.proc.stdin.write("leave\n")
        client.proc.stdin.flush()
        assert {json.dumps(client.next()), json.dumps(client.next())} == {
            '{"left": {}}',
            '{"closed": true}',
        }
    finally:
        client.close()


def test_positions_reach_the_official_clients_on_callbacks(cluster: Cluster, npm_dir) -> None:
    a = cluster.start("A")
    url = start_gateway(cluster, a, "gw").removesuffix("/websocket")
    client = NodeClient(npm_dir, url, "topics:pos", "positions")
    try:
        assert client.next() == {"joined": {}}
        got = [client.next(), client.next()]
        event = next(said for said in got if "event" in said)
        epoch, seq = event["ref"].split(".")
        assert int(epoch) > 0 and seq == "1" and event["event"] == {"message": "from js"}
    finally:
        client.close()


def test_the_official_client_brings_its_auth_token(cluster: Cluster, npm_dir, tmp_path) -> None:
    a = cluster.start("A")
    tokens = tmp_path / "tokens.toml"
    tokens.write_text('[web]\ntoken = "web-0123456789abcdef"\nsubscribe = ["topics:"]\n')
    url = start_gateway(cluster, a, "gw", "--tokens", str(tokens)).removesuffix("/websocket")
    client = NodeClient(npm_dir, url, "topics:tok", "plain", "web-0123456789abcdef")
    try:
        assert client.next() == {"joined": {}}
        assert client.next() == {"publish_error": {"reason": "forbidden"}}  # subscribe only
    finally:
        client.close()
    stranger = NodeClient(npm_dir, url, "topics:tok", "plain", "not-a-known-token-at-all")
    try:
        assert stranger.next() == {"socket_error": True}  # HTTP 403 at the handshake
    finally:
        stranger.close()
