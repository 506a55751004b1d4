"""Per-client permissions (docs/PROTOCOL.md §2.2) on a real node with CURVE clients:
a publish or a request a client may not make is refused ``forbidden``; a subscription
it may not hold is not applied, delivers nothing and is counted; SIGHUP reads the
permissions file again."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import zmq

from tests.cluster.harness import Cluster, NodeProc, wait_for
from zdps import Client, ZdpsError
from zdps.keys import read_key

pytestmark = pytest.mark.timeout(90)

RULES = """
[alice]
publish = ["news."]
subscribe = ["news.", "public."]
deny_subscribe = ["news.secret"]

["*"]
subscribe = ["public."]
"""


def keygen(cluster: Cluster, name: str) -> tuple[Path, Path]:
    directory = cluster.workdir / "keys" / name
    assert cluster.run("keygen", name, "--dir", str(directory)).returncode == 0
    return directory / f"{name}.key", directory / f"{name}.key_secret"


@pytest.fixture
def guarded(cluster: Cluster) -> tuple[NodeProc, dict[str, dict[str, str]], Path]:
    """Node a with CURVE clients alice and bob, and the rules above."""
    keys = {name: keygen(cluster, name) for name in ("a", "alice", "bob")}
    peers, clients = cluster.workdir / "peers", cluster.workdir / "clients"
    peers.mkdir()
    clients.mkdir()
    (peers / "a.key").write_bytes(keys["a"][0].read_bytes())
    for name in ("alice", "bob"):
        (clients / f"{name}.key").write_bytes(keys[name][0].read_bytes())
    rules = cluster.workdir / "permissions.toml"
    rules.write_text(RULES)
    a = cluster.start(
        "a", curve_secret_key=keys["a"][1], curve_peers=peers, curve_clients=clients,
        permissions=rules, wait=False,
    )  # fmt: skip
    who = {
        name: {"curve_key": str(keys[name][1]), "server_key": str(keys["a"][0])}
        for name in ("alice", "bob")
    }
    wait_for(lambda: Client(a.api, timeout=1, **who["alice"]).status(), 15, "a to answer")
    return a, who, rules


def raw_sub(ctx: zmq.Context, node: NodeProc, keys: dict[str, str]) -> zmq.Socket:
    """A raw SUB speaking CURVE with the given client key."""
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    mine = read_key(Path(keys["curve_key"]))
    sub.setsockopt(zmq.CURVE_SERVERKEY, read_key(Path(keys["server_key"])).public)
    sub.setsockopt(zmq.CURVE_PUBLICKEY, mine.public)
    sub.setsockopt(zmq.CURVE_SECRETKEY, mine.secret)
    sub.connect(node.pub)
    return sub


def test_what_a_client_may_not_do_is_refused_and_counted(guarded) -> None:
    a, who, _rules = guarded
    with Client(a.api, timeout=5, **who["alice"]) as alice:
        assert alice.publish("news.a", b"allowed").seq == 1
        with pytest.raises(ZdpsError, match="forbidden"):
            alice.publish("sport", b"not allowed")
        with pytest.raises(ZdpsError, match="forbidden"):
            alice.subscribe("news.secret.plans")
        with pytest.raises(ZdpsError, match="forbidden"):
            alice.delete_topic("sport")
        with Client(a.api, timeout=5, **who["bob"]) as bob:
            with pytest.raises(ZdpsError, match="forbidden"):
                bob.publish("public.x", b"bob may only read")
            # 4 refusals, and the refused subscription's SUB, if it got its two
            # subscriptions (the group and its loss notices) out before it closed.
            assert 4 <= bob.status()["errors"]["forbidden"] <= 6


def test_a_forbidden_subscription_delivers_nothing(guarded) -> None:
    a, who, _rules = guarded
    ctx = zmq.Context()
    try:
        bob = raw_sub(ctx, a, who["bob"])
        bob.subscribe(b"news.a\x00")  # refused: bob may read public.* only
        bob.subscribe(b"public.x\x00")
        with Client(a.api, timeout=5, **who["alice"]) as alice:
            subscribed = lambda: alice.members("public.x")["nodes"] == {"a": 1}  # noqa: E731
            wait_for(subscribed, 10, "bob's subscription")
            assert alice.members("news.a")["nodes"] == {}
            alice.publish("news.a", b"not for bob")
            with pytest.raises(ZdpsError, match="forbidden"):
                alice.publish("public.x", b"alice may not publish here")
            assert not bob.poll(300)
            assert alice.status()["errors"]["forbidden"] == 2
        assert "bob may not subscribe to" in a.logs()
    finally:
        ctx.destroy(0)


def test_sighup_reads_the_permissions_again(guarded) -> None:
    a, who, rules = guarded
    with Client(a.api, timeout=5, **who["bob"]) as bob:
        with pytest.raises(ZdpsError, match="forbidden"):
            bob.publish("public.x", b"not yet")
        rules.write_text(RULES + '\n[bob]\npublish = ["public."]\n')
        a.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "curve_peers_reloaded" in a.logs(), 10, "the reload")
        assert "rules=3" in a.logs()
        assert bob.publish("public.x", b"now allowed").seq == 1
        rules.write_text("[bob\n")
        a.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "curve_peers_kept" in a.logs(), 10, "the failed reload")
        assert bob.publish("public.x", b"still allowed").seq == 2
