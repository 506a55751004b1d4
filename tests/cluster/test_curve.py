"""CURVE between nodes (docs/PROTOCOL.md §2.1), with real daemons on loopback.

Keys come from ``zdps keygen``; each node gets its own allow-list directory, so a test
can let a node in on one side only. What is checked: a CURVE cluster forms and
delivers; a stranger's key and a plain-text node never join and are counted; SIGHUP
adds a key without a restart; a key rotated as §2.1 says keeps the cluster whole.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from tests.cluster.harness import Cluster, NodeProc, wait_for

pytestmark = pytest.mark.timeout(90)


def keygen(cluster: Cluster, name: str, directory: Path) -> tuple[Path, Path]:
    done = cluster.run("keygen", name, "--dir", str(directory))
    assert done.returncode == 0, done.stderr
    return directory / f"{name}.key", directory / f"{name}.key_secret"


def allow(peers: Path, public: Path, as_name: str | None = None) -> None:
    peers.mkdir(parents=True, exist_ok=True)
    shutil.copy(public, peers / (as_name or public.name))


def start(
    cluster: Cluster, name: str, secret: Path, peers: Path, seed: NodeProc | None = None, **more
) -> NodeProc:
    flags = {"curve_secret_key": secret, "curve_peers": peers, **more}
    if seed is not None:
        flags["seed"] = f"{seed.node_id}@{seed.cluster}"
    return cluster.start(name, **flags)


@pytest.fixture
def keys(cluster: Cluster) -> dict[str, tuple[Path, Path]]:
    return {name: keygen(cluster, name, cluster.workdir / "keys" / name) for name in "abc"}


def everyone(cluster: Cluster, keys, names: str = "abc") -> Path:
    """One allow-list of ``names``, shared."""
    peers = cluster.workdir / "peers"
    for name in names:
        allow(peers, keys[name][0])
    return peers


def errors(node: NodeProc) -> dict[str, int]:
    return node.status()["errors"]


def test_a_curve_cluster_forms_and_delivers(cluster: Cluster, keys) -> None:
    peers = everyone(cluster, keys)
    a = start(cluster, "a", keys["a"][1], peers)
    b = start(cluster, "b", keys["b"][1], peers, seed=a)
    c = start(cluster, "c", keys["c"][1], peers, seed=a)
    cluster.wait_mesh()
    assert a.status()["cluster_security"] == "curve"
    with c.client() as sub_client, a.client() as pub_client:
        sub = sub_client.subscribe("secret-news")
        for topic in ("secret-news",):
            wait_for(lambda t=topic: a.members(t)["nodes"].get("c"), 10, "c's subscription")
        acks = [pub_client.publish("secret-news", f"m{i}".encode()) for i in range(20)]
        assert [sub.recv(5).data for _ in range(20)] == [f"m{i}".encode() for i in range(20)]
        sub.close()
    assert all(ack.seq == i + 1 for i, ack in enumerate(acks))
    for node in (a, b, c):
        assert not {"unauthenticated", "spoofed_sender", "no_peer_key"} & set(errors(node))
    shown = cluster.run("status", "--node", a.api)
    assert "cluster CURVE" in shown.stdout


def test_a_stranger_and_a_plain_text_node_never_join_and_are_counted(
    cluster: Cluster, keys
) -> None:
    peers = everyone(cluster, keys, "ab")
    a = start(cluster, "a", keys["a"][1], peers)
    b = start(cluster, "b", keys["b"][1], peers, seed=a)
    cluster.wait_mesh()
    plain = cluster.start("plain", seed=a.cluster)

    def plain_refused() -> bool:  # libzmq says one or the other, as it happens
        logs = a.logs()
        return "it spoke plain text" in logs or "ended during the handshake" in logs

    wait_for(plain_refused, 15, "a to refuse the plain-text node")
    # c's own list allows a, but a's does not allow c.
    c_peers = cluster.workdir / "c-peers"
    allow(c_peers, keys["a"][0])
    c = start(cluster, "c", keys["c"][1], c_peers, seed=a)
    wait_for(lambda: "a CURVE key that is not in curve_peers" in a.logs(), 15, "c refused")
    assert errors(a)["unauthenticated"] >= 2
    wait_for(lambda: "seed_silent" in plain.logs() and "seed_silent" in c.logs(), 15, "reports")
    assert a.alive_peers() == {"b"} and b.alive_peers() == {"a"}
    assert c.alive_peers() == set() and plain.alive_peers() == set()
    assert "CURVE settings do not match" in plain.logs()
    assert "its curve_peers does not list this node's key" in c.logs()  # told, at c too


def test_sighup_reads_the_allow_list_again(cluster: Cluster, keys) -> None:
    a_peers, b_peers = cluster.workdir / "a-peers", cluster.workdir / "b-peers"
    allow(a_peers, keys["a"][0])
    allow(b_peers, keys["a"][0])
    a = start(cluster, "a", keys["a"][1], a_peers)
    start(cluster, "b", keys["b"][1], b_peers, seed=a)
    wait_for(lambda: errors(a).get("unauthenticated"), 15, "a to refuse b")
    assert a.alive_peers() == set()
    allow(a_peers, keys["b"][0])
    a.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "curve_peers_reloaded keys=2" in a.logs(), 10, "the reload")
    cluster.wait_mesh(timeout=15)
    assert a.proc.poll() is None
    (a_peers / "broken.key").write_text("not a key")
    a.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "curve_peers_kept" in a.logs(), 10, "the failed reload")
    assert a.proc.poll() is None and a.alive_peers() == {"b"}


def test_a_key_rotated_as_documented_keeps_the_cluster_whole(cluster: Cluster, keys) -> None:
    peers = everyone(cluster, keys, "ab")
    a = start(cluster, "a", keys["a"][1], peers)
    b = start(cluster, "b", keys["b"][1], peers, seed=a)
    cluster.wait_mesh()
    new_public, new_secret = keygen(cluster, "b", cluster.workdir / "keys" / "b-new")
    allow(peers, new_public, "b.2.key")
    old = peers / "b.key"
    os.utime(old, (1, 1))  # older than the new file, however fast this runs
    for node in (a, b):
        node.proc.send_signal(signal.SIGHUP)
        wait_for(lambda n=node: "curve_peers_reloaded keys=3" in n.logs(), 10, "the reload")
    b.proc.send_signal(signal.SIGTERM)
    assert b.exit_code(10) == 0
    b2 = start(cluster, "b", new_secret, peers, seed=a, same_as=b)
    cluster.wait_mesh(timeout=15)
    old.unlink()
    for node in (a, b2):
        node.proc.send_signal(signal.SIGHUP)
        wait_for(lambda n=node: n.logs().count("curve_peers_reloaded keys=2") >= 1, 10, "reload")
    with a.client() as sub_client, b2.client() as pub_client:
        sub = sub_client.subscribe("after-rotation")
        wait_for(lambda: b2.members("after-rotation")["nodes"].get("a"), 10, "a's subscription")
        pub_client.publish("after-rotation", b"still here")
        assert sub.recv(5).data == b"still here"
        sub.close()
    assert a.alive_peers() == {"b"} and b2.alive_peers() == {"a"}
    assert not errors(a).get("spoofed_sender")


def test_gossip_never_makes_a_node_dial_a_node_it_has_no_key_for(cluster: Cluster, keys) -> None:
    peers = everyone(cluster, keys)  # a and c allow everyone
    b_peers = cluster.workdir / "b-peers"
    for name in "ab":
        allow(b_peers, keys[name][0])
    a = start(cluster, "a", keys["a"][1], peers)
    b = start(cluster, "b", keys["b"][1], b_peers, seed=a)
    wait_for(lambda: a.alive_peers() == {"b"}, 15, "a and b to meet")
    c = start(cluster, "c", keys["c"][1], peers, seed=a)
    wait_for(lambda: a.alive_peers() == {"b", "c"}, 15, "c to join a")
    # a's peer lists name c to b; b has no key for c, so it never dials c.
    wait_for(lambda: errors(b).get("no_peer_key"), 15, "b to refuse to dial c")
    assert "c" not in b.alive_peers() and "b" not in c.alive_peers()
    assert "has no key in curve_peers" in b.logs()
