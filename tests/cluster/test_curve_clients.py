"""CURVE for clients (docs/PROTOCOL.md §2.1): with ``curve_clients`` the API and both
PUBs take only listed client keys; the Python clients and the CLI speak CURVE with
``--curve-key``/``--server-key`` (or $ZDPS_CURVE_KEY/$ZDPS_SERVER_KEY)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import zmq

from tests.cluster.harness import Cluster, NodeProc, wait_for, zdps_command
from zdps import Client, ZdpsError

pytestmark = pytest.mark.timeout(90)


def keygen(cluster: Cluster, name: str) -> tuple[Path, Path]:
    directory = cluster.workdir / "keys" / name
    assert cluster.run("keygen", name, "--dir", str(directory)).returncode == 0
    return directory / f"{name}.key", directory / f"{name}.key_secret"


@pytest.fixture
def secured(cluster: Cluster) -> tuple[NodeProc, dict[str, tuple[Path, Path]]]:
    """Node a with CURVE for peers and for clients; the client key "app" is listed,
    "stranger" is not."""
    keys = {name: keygen(cluster, name) for name in ("a", "app", "stranger")}
    peers, clients = cluster.workdir / "peers", cluster.workdir / "clients"
    peers.mkdir()
    clients.mkdir()
    (peers / "a.key").write_bytes(keys["a"][0].read_bytes())
    (clients / "app.key").write_bytes(keys["app"][0].read_bytes())
    a = cluster.start(
        "a", curve_secret_key=keys["a"][1], curve_peers=peers, curve_clients=clients, wait=False
    )
    app = {"curve_key": str(keys["app"][1]), "server_key": str(keys["a"][0])}
    wait_for(lambda: Client(a.api, timeout=1, **app).status(), 15, "a to answer app")
    return a, keys


def test_a_listed_client_publishes_and_subscribes_over_curve(secured) -> None:
    a, keys = secured
    app = {"curve_key": str(keys["app"][1]), "server_key": str(keys["a"][0])}
    with Client(a.api, timeout=5, **app) as client:
        info = client.status()
        assert (info["cluster_security"], info["client_security"]) == ("curve", "curve")
        sub = client.subscribe("private")
        for batches in (False, True):
            with Client(a.api, timeout=5, **app) as other:
                whole = other.subscribe("private", batches=batches)
                other.publish("private", b"for app only")
                assert whole.recv(5).data == b"for app only"
                whole.close()
        assert [sub.recv(5).data for _ in range(2)] == [b"for app only"] * 2
        sub.close()


def test_the_cli_speaks_curve_with_flags_or_environment(cluster: Cluster, secured) -> None:
    a, keys = secured
    flags = ["--curve-key", str(keys["app"][1]), "--server-key", str(keys["a"][0])]
    shown = cluster.run(*flags, "status", "--node", a.api)
    assert shown.returncode == 0 and "clients CURVE" in shown.stdout, shown.stderr
    env = {
        **os.environ,
        "ZDPS_CURVE_KEY": str(keys["app"][1]),
        "ZDPS_SERVER_KEY": str(keys["a"][0]),
    }
    done = subprocess.run(
        [*zdps_command(), "publish", "t", "hello", "--node", a.api],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_a_client_without_a_listed_key_gets_nothing_and_is_counted(
    cluster: Cluster, secured
) -> None:
    a, keys = secured
    plain = cluster.run("status", "--node", a.api, "--timeout", "3")
    assert plain.returncode == 1 and "handshake" in plain.stderr
    stranger = ["--curve-key", str(keys["stranger"][1]), "--server-key", str(keys["a"][0])]
    refused = cluster.run(*stranger, "status", "--node", a.api, "--timeout", "3")
    assert refused.returncode == 1
    half = cluster.run("--curve-key", str(keys["app"][1]), "status", "--node", a.api)
    assert half.returncode == 1 and "both" in half.stderr
    with pytest.raises(ValueError, match="both"):
        Client(a.api, curve_key=str(keys["app"][1]))
    ctx = zmq.Context()
    try:
        sub = ctx.socket(zmq.SUB)  # a raw SUB in plain text: never subscribed, never fed
        sub.setsockopt(zmq.LINGER, 0)
        sub.connect(a.pub)
        sub.subscribe(b"")
        app = {"curve_key": str(keys["app"][1]), "server_key": str(keys["a"][0])}
        with Client(a.api, timeout=5, **app) as client:
            for _ in range(20):
                client.publish("t", b"x")
        assert not sub.poll(500)
    finally:
        ctx.destroy(0)
    wait_for(lambda: "not in curve_clients" in a.logs(), 10, "the stranger's refusal")
    app = {"curve_key": str(keys["app"][1]), "server_key": str(keys["a"][0])}
    with Client(a.api, timeout=5, **app) as client:
        assert client.status()["errors"]["unauthenticated"] >= 3
    with pytest.raises(ZdpsError):
        Client(a.api, timeout=1).status()
