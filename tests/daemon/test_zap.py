"""The ZAP handler, the gate and the cluster socket's CURVE (zdps/daemon/zap.py,
gate.py, security.py).

``answer`` on its own, then real sockets on loopback: the handler served from a poll
loop as the daemon's, an allowed key let in with its node as User-Id, any other key
and a plain-text connection refused and reported; and plain client sockets past
``max_clients`` refused at their handshake.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from zdps.daemon.gate import Gate
from zdps.daemon.monitors import CONNECTIONS, HANDSHAKE_FAILED, SocketMonitor
from zdps.daemon.security import CurveSecurity
from zdps.daemon.zap import CLIENT_DOMAIN, CLUSTER_DOMAIN, Rule, answer
from zdps.keys import NodeKeys, generate, read_key

pytestmark = pytest.mark.timeout(20)

KEY = bytes(range(32))


def allowed(key: bytes) -> str | None:
    return "b" if key == KEY else None


RULES = {
    CLUSTER_DOMAIN: Rule("curve_peers", allowed),
    CLIENT_DOMAIN: Rule("curve_clients", lambda k: None),
    b"plain": Rule("", None),
}


def admit(_domain: bytes) -> None:
    return None


def request(domain: bytes = CLUSTER_DOMAIN, mechanism: bytes = b"CURVE", *creds: bytes):
    return [b"1.0", b"7", domain, b"127.0.0.1", b"", mechanism, *creds]


def test_an_allowed_key_is_let_in_as_its_node() -> None:
    assert answer(request(CLUSTER_DOMAIN, b"CURVE", KEY), RULES, admit) == (
        [b"1.0", b"7", b"200", b"OK", b"b", b""],
        "",
        "",
    )
    assert answer(request(b"plain", b"NULL"), RULES, admit)[0][2] == b"200"


def test_a_limit_refuses_what_the_rules_let_in() -> None:
    def full(_domain: bytes) -> tuple[str, str]:
        return "too_many_clients", "already 1 client connections"

    reply, code, why = answer(request(b"plain", b"NULL"), RULES, full)
    assert reply[2] == b"400" and code == "too_many_clients" and "already 1" in why


@pytest.mark.parametrize(
    ("frames", "why"),
    [
        (request(CLUSTER_DOMAIN, b"CURVE", bytes(32)), "not in curve_peers"),
        (request(CLUSTER_DOMAIN, b"NULL"), "NULL connection"),
        (request(CLUSTER_DOMAIN, b"PLAIN", b"user", b"pass"), "PLAIN connection"),
        (request(CLIENT_DOMAIN, b"CURVE", KEY), "not in curve_clients"),
        (request(b"other", b"CURVE", KEY), "no access rules"),
        (request(b"", b"CURVE", KEY), "no access rules"),
        (request(b"plain", b"CURVE", KEY), "CURVE connection to a plain socket"),
    ],
)
def test_anything_else_is_refused_with_a_reason(frames: list[bytes], why: str) -> None:
    reply, code, reason = answer(frames, RULES, admit)
    assert reply[:3] == [b"1.0", b"7", b"400"] and reply[4] == b"" and why in reason
    assert code == "unauthenticated"


@pytest.mark.parametrize(
    "frames", [[], [b"1.0"], [b"2.0", b"7", CLUSTER_DOMAIN, b"", b"", b"CURVE"]]
)
def test_a_malformed_request_gets_500(frames: list[bytes]) -> None:
    reply, code, reason = answer(frames, RULES, admit)
    assert reply[2] == b"500" and reason and code == "unauthenticated"


# ---------------------------------------------------------------- real sockets


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    """Secret key files of a (the server), b (allowed) and s (a stranger)."""
    (tmp_path / "peers").mkdir()
    secrets = {}
    for name in "abs":
        public, secret = generate(tmp_path / name, name)
        secrets[name] = secret
        if name == "b":
            (tmp_path / "peers" / "b.key").write_bytes(public.read_bytes())
    return secrets


@pytest.fixture
def server(keys: dict[str, Path]) -> Iterator[tuple[Gate, zmq.Socket, SocketMonitor]]:
    ctx = zmq.Context()
    peers = keys["a"].parents[1] / "peers"
    security = CurveSecurity(NodeKeys.load(str(keys["a"]), str(peers)), {}, lambda e: None)
    gate = Gate(ctx, security, max_clients=10)
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    for name, value in security.server_options().items():
        router.setsockopt(getattr(zmq, name.upper()), value)
    monitor = SocketMonitor(router, "cluster", HANDSHAKE_FAILED)
    router.bind("tcp://127.0.0.1:*")
    security.listen(monitor)
    yield gate, router, monitor
    gate.close()
    monitor.close()
    router.close(0)
    ctx.term()


def dealer(ctx: zmq.Context, endpoint: str, client: Path | None, server: Path) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if client is not None:
        mine = read_key(client)
        sock.setsockopt(zmq.CURVE_SERVERKEY, read_key(server).public)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, mine.public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, mine.secret)
    sock.connect(endpoint)
    return sock


def serve_until(server, done, timeout: float = 5.0) -> tuple[list, list[str]]:
    """The daemon's loop in miniature: frames read from ``router``, refusals reported."""
    gate, router, monitor = server
    poller = zmq.Poller()
    for sock in (router, gate.zap.socket, monitor.socket):
        poller.register(sock, zmq.POLLIN)
    frames, refused = [], []
    deadline = time.monotonic() + timeout
    while not done(frames, refused):
        assert time.monotonic() < deadline, (frames, refused)
        ready = dict(poller.poll(50))
        if monitor.socket in ready:
            monitor.pump(0.0)
        refused += [why for _code, why, _where in gate.refusals(ready)]
        if router in ready:
            _identity, frame = router.recv_multipart(copy=False)
            frames.append((frame.bytes, CurveSecurity.peer_of(frame)))
    return frames, refused


def test_an_allowed_node_is_read_with_its_name_and_strangers_are_refused(server, keys) -> None:
    router = server[1]
    endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
    ctx = zmq.Context()
    try:
        stranger = dealer(ctx, endpoint, keys["s"], keys["a"])
        stranger.send(b"from s")
        plain = dealer(ctx, endpoint, None, keys["a"])
        plain.send(b"in clear")
        wrong_server = dealer(ctx, endpoint, keys["b"], keys["s"])  # expects s's key at a
        wrong_server.send(b"to the wrong server")
        frames, refused = serve_until(server, lambda f, r: len(r) >= 3)
        member = dealer(ctx, endpoint, keys["b"], keys["a"])
        member.send(b"from b")
        frames, _ = serve_until(server, lambda f, r: f)
    finally:
        ctx.destroy(0)
    assert frames == [(b"from b", "b")]
    assert any("not in curve_peers" in why for why in refused)
    assert any("did not decrypt" in why for why in refused)
    # libzmq reports a plain-text peer as a mechanism mismatch, or as a connection that
    # ended during the handshake, depending on which side saw the greeting first.
    assert any("plain text" in why or "ended during" in why for why in refused)


def test_a_link_expects_the_key_of_the_node_it_dials(keys) -> None:
    known = {"tcp://127.0.0.1:3": "s"}  # what membership knows; s has no allowed key
    node_keys = NodeKeys.load(str(keys["a"]), str(keys["a"].parents[1] / "peers"))
    seeds = {"tcp://127.0.0.1:1": "b"}
    security = CurveSecurity(node_keys, seeds, known.get)
    to_b, why = security.client("tcp://127.0.0.1:1")
    nobody, why_nobody = security.client("tcp://127.0.0.1:2")
    to_s, why_s = security.client("tcp://127.0.0.1:3")
    assert to_b is not None and not why
    assert (to_b.server, to_b.public) == (read_key(keys["b"]).public, read_key(keys["a"]).public)
    assert nobody is None and "no node is known" in why_nobody
    assert to_s is None and "s (at" in why_s and "curve_peers" in why_s


def test_plain_client_connections_past_max_clients_are_refused() -> None:
    ctx = zmq.Context()
    gate = Gate(ctx, None, max_clients=2)
    xpub = ctx.socket(zmq.XPUB)
    xpub.setsockopt(zmq.XPUB_VERBOSE, 1)  # each SUB's subscribe: one per admitted SUB
    for name, value in gate.client_options().items():
        xpub.setsockopt(getattr(zmq, name.upper()), value)
    monitor = SocketMonitor(xpub, "pub", CONNECTIONS)
    gate.count(monitor)
    endpoint = f"tcp://127.0.0.1:{xpub.bind_to_random_port('tcp://127.0.0.1')}"
    poller = zmq.Poller()
    for sock in (xpub, gate.zap.socket, monitor.socket):
        poller.register(sock, zmq.POLLIN)
    subs, refused, joined = [], [], 0

    def serve(until) -> None:
        nonlocal joined, refused
        deadline = time.monotonic() + 5
        while not until():
            assert time.monotonic() < deadline, (joined, refused)
            ready = dict(poller.poll(50))
            monitor.pump(0.0)
            refused += [code for code, _why, _where in gate.refusals(ready)]
            if xpub in ready:
                joined += xpub.recv() == b"\x01t"

    try:
        for count in (1, 2, 3):  # one after the other: each is let in or refused alone
            subs.append(sub := ctx.socket(zmq.SUB))
            sub.setsockopt(zmq.LINGER, 0)
            sub.connect(endpoint)
            sub.subscribe(b"t")
            serve(lambda count=count: joined == count or refused)
    finally:
        monitor.close()
        gate.close()
        ctx.destroy(0)
    assert joined == 2 and set(refused) == {"too_many_clients"}
