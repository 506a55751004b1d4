"""The gateway's edge protection and visibility (docs/GATEWAY.md, "Limits"): a client
that does not read is dropped and counted without slowing the others; a connection
limit; an origin allow-list; GET /status; the [gateway] config table."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.cluster.harness import Cluster, free_port, wait_for, zdps_command
from tests.cluster.test_gateway import start_gateway
from tests.cluster.test_systemd_notify import lines_until
from zdps import Client

pytestmark = pytest.mark.timeout(120)

JOIN = '["1","1","t","phx_join",{}]'
HEARTBEAT = '[null,"9","phoenix","heartbeat",{}]'


def status(url: str) -> dict:
    http = url.replace("ws://", "http://").rsplit("/socket", 1)[0]
    with urllib.request.urlopen(f"{http}/status", timeout=5) as response:
        assert response.headers["Content-Type"] == "application/json"
        return json.loads(response.read())


@contextlib.contextmanager
def joined(url: str, **options: Any) -> Iterator[ClientConnection]:
    """A WebSocket that joined topic t."""
    with connect(f"{url}?vsn=2.0.0", open_timeout=5, **options) as ws:
        ws.send(JOIN)
        assert json.loads(ws.recv(timeout=10))[4]["status"] == "ok"
        yield ws


def test_a_client_that_does_not_read_is_dropped_and_the_others_get_everything(
    cluster: Cluster,
) -> None:
    a = cluster.start("A")
    url = start_gateway(cluster, a, "gw", "--max-send-buffer", "65536")
    # slow reads nothing: the kernel's buffers fill, then the gateway's; fast reads all as it
    # comes (its queue unbounded), while the test is still publishing
    with joined(url, max_queue=1) as slow, joined(url, max_queue=None) as fast:
        count, payload = 1500, b"x" * 8000
        with Client(a.api) as client:
            assert all(r.seq for r in client.publish_many(("t", payload) for _ in range(count)))
        received = 0
        while received < count:
            frame = json.loads(fast.recv(timeout=10))
            received += frame[3] == "message"
        shown = status(url)
        assert shown["counters"]["slow_clients_dropped"] == 1, shown
        assert shown["channels"] == 1, shown
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                slow.recv(timeout=10)
        assert closed.value.rcvd is None or closed.value.rcvd.code == 1013


def test_a_silent_client_is_closed_after_idle_timeout_and_counted(cluster: Cluster) -> None:
    a = cluster.start("A")
    url = start_gateway(cluster, a, "gw", "--idle-timeout", "1")
    with joined(url) as silent, joined(url) as beating:
        for ref in range(8):  # 2 s of heartbeats every 0.25 s, more than the timeout
            beating.send(f'[null,"{ref}","phoenix","heartbeat",{{}}]')
            assert json.loads(beating.recv(timeout=5))[4]["status"] == "ok"
            with contextlib.suppress(TimeoutError):
                beating.recv(timeout=0.25)  # nothing else comes: the wait paces the beats
        with pytest.raises(ConnectionClosed) as closed:
            silent.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
        shown = status(url)
        assert shown["counters"]["idle_closed"] == 1, shown
        assert shown["connections"] == 1 and shown["limits"]["idle_timeout"] == 1, shown


def test_connection_limit_origins_and_status(cluster: Cluster, tmp_path) -> None:
    a = cluster.start("A")
    config = tmp_path / "gateway.toml"
    config.write_text('[gateway]\nmax_connections = 1\norigins = ["https://app.test"]\n')
    url = start_gateway(cluster, a, "gw", "--config", str(config))
    with pytest.raises(InvalidStatus) as no_origin:
        connect(f"{url}?vsn=2.0.0", open_timeout=5)
    assert no_origin.value.response.status_code == 403
    with joined(url, origin="https://app.test"):
        with pytest.raises(InvalidStatus) as full:
            connect(f"{url}?vsn=2.0.0", open_timeout=5, origin="https://app.test")
        assert full.value.response.status_code == 503
        shown = status(url)
        assert (shown["connections"], shown["topics"], shown["channels"]) == (1, 1, 1)
        assert shown["limits"] == {
            "max_connections": 1, "max_send_buffer": 1048576, "idle_timeout": 60,
            "origins": ["https://app.test"],
            "tokens": None,
        }  # fmt: skip
        assert shown["counters"]["refused_max_connections"] == 1
    wait_for(lambda: status(url)["connections"] == 0, 10, "the socket to be gone")


def test_a_bad_config_table_is_refused_with_its_key(cluster: Cluster, tmp_path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[gateway]\nlisten = "127.0.0.1:1"\nmax_conections = 5\n')
    done = cluster.run("gateway", "--config", str(config), "--listen", f"127.0.0.1:{free_port()}")
    assert done.returncode == 1 and "[gateway] unknown key 'max_conections'" in done.stderr
    checked = cluster.run("config", "check", str(config))
    assert checked.returncode == 1 and "[gateway] unknown key 'max_conections'" in checked.stderr
    flagged = cluster.run("gateway", "--listen", "nowhere")
    assert flagged.returncode == 1 and "listen 'nowhere' is not HOST:PORT" in flagged.stderr


def test_sigterm_closes_every_socket_with_1012_and_exits(cluster: Cluster) -> None:
    """As Phoenix drains: clients are told to reconnect (to another gateway)."""
    a = cluster.start("A")
    url = start_gateway(cluster, a, "gw")
    gateway = cluster.procs[-1]
    with joined(url) as ws:
        gateway.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    assert gateway.wait(10) == 0


def test_with_a_tokens_file_a_connection_needs_a_known_token(cluster: Cluster, tmp_path) -> None:
    a = cluster.start("A")
    tokens = tmp_path / "tokens.toml"
    tokens.write_text('[app]\ntoken = "app-0123456789abcdef"\nsubscribe = ["t"]\n')
    config = tmp_path / "gateway.toml"
    config.write_text(f'[gateway]\ntokens = "{tokens}"\n')
    url = start_gateway(cluster, a, "gw", "--config", str(config))
    for query in ("", "&token=app-0123456789abcdeX"):
        with pytest.raises(InvalidStatus) as refused:
            connect(f"{url}?vsn=2.0.0{query}", open_timeout=5)
        assert refused.value.response.status_code == 403
    with connect(f"{url}?vsn=2.0.0&token=app-0123456789abcdef", open_timeout=5) as ws:
        ws.send(JOIN)
        assert json.loads(ws.recv(timeout=10))[4]["status"] == "ok"
        ws.send('["2","2","u","phx_join",{}]')
        assert json.loads(ws.recv(timeout=10))[4]["response"] == {"reason": "unauthorized"}
    shown = status(url)
    assert shown["counters"]["refused_token"] == 2 and shown["limits"]["tokens"] == 1


def test_sighup_reads_the_tokens_again_and_closes_the_sockets_of_a_token_gone(
    cluster: Cluster, tmp_path
) -> None:
    a = cluster.start("A")
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(
        '[app]\ntoken = "app-0123456789abcdef"\nsubscribe = ["t"]\n'
        '[old]\ntoken = "old-0123456789abcdef"\nsubscribe = ["t"]\n'
    )
    url = start_gateway(cluster, a, "gw", "--tokens", str(tokens))
    gateway, err = cluster.procs[-1], cluster.workdir / "gw.err"

    def reloaded(times: int) -> None:
        gateway.send_signal(signal.SIGHUP)
        wait_for(lambda: err.read_text().count("SIGHUP") == times, 10, "the reload")

    with (
        connect(f"{url}?vsn=2.0.0&token=app-0123456789abcdef", open_timeout=5) as app,
        connect(f"{url}?vsn=2.0.0&token=old-0123456789abcdef", open_timeout=5) as old,
    ):
        for ws in (app, old):
            ws.send(JOIN)
            assert json.loads(ws.recv(timeout=10))[4]["status"] == "ok"
        tokens.write_text('[app]\ntoken = "app-0123456789abcdef"\nsubscribe = ["t", "u"]\n')
        reloaded(1)
        with pytest.raises(ConnectionClosed) as closed:
            old.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        app.send('["2","2","u","phx_join",{}]')  # the new rules hold for sockets open
        assert json.loads(app.recv(timeout=10))[4]["status"] == "ok"
        tokens.write_text("[app]\ntoken = 'short'\n")
        reloaded(2)
        assert "the tokens file is kept as it was" in err.read_text()
        app.send(HEARTBEAT)
        assert json.loads(app.recv(timeout=10))[4]["status"] == "ok"  # still open
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{url}?vsn=2.0.0&token=old-0123456789abcdef", open_timeout=5)
    assert refused.value.response.status_code == 403
    assert status(url)["counters"]["revoked"] == 1
    assert gateway.poll() is None


def test_under_systemd_it_says_ready_feeds_the_watchdog_and_says_stopping(
    cluster: Cluster,
) -> None:
    a = cluster.start("A")
    name = f"@zdps-gateway-notify-{os.getpid()}"
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd.bind("\0" + name[1:])
    port = free_port()
    env = {**os.environ, "NOTIFY_SOCKET": name, "WATCHDOG_USEC": "400000"}
    gateway = subprocess.Popen(
        [*zdps_command(), "gateway", "--listen", f"127.0.0.1:{port}", "--node", a.api],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        lines, _ = lines_until(systemd, "READY=1", 15)
        assert any(line.startswith("STATUS=0 connection(s)") for line in lines), lines
        lines_until(systemd, "WATCHDOG=1", 5)
        lines_until(systemd, "WATCHDOG=1", 5)  # again: fed from the loop
        gateway.send_signal(signal.SIGTERM)
        lines_until(systemd, "STOPPING=1", 5)
        assert gateway.wait(10) == 0
    finally:
        gateway.kill()
        systemd.close()
