"""Bad input on every socket and in every front end: clear errors, counted, nothing lost."""

from __future__ import annotations

import msgpack
import pytest
import zmq

from tests.cluster.harness import Cluster, free_port, wait_for
from zdps import Client, PublishError, RequestError
from zdps.wire import PROTOCOL_VERSION as V
from zdps.wire.batches import pack_batch

pytestmark = pytest.mark.timeout(90)


def dealer(endpoint: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


def test_garbage_on_every_socket_is_counted_and_survived(cluster: Cluster) -> None:
    a = cluster.start("A")
    b = cluster.start("B", seeds=[a])
    cluster.wait_mesh()
    with b.client() as client:
        subscription = client.subscribe("survivor")
        assert client.publish("survivor", b"accepted before").seq == 1

    peer = dealer(a.cluster)
    peer.send(b"\xc1 not msgpack")
    peer.send(msgpack.packb([99, "default", "X", 1, []]))  # unknown protocol version
    peer.send(msgpack.packb([V, "default", "X", 1, [["fanout", "not a list"]]]))  # unknown peer
    peer.send_multipart([b"two", b"frames"])
    peer.send(msgpack.packb({"a": "map"}))
    hostile = {"advertise": "garbage", "peers": {}, "dialed": a.cluster, "reply": True}
    peer.send(msgpack.packb([V, "default", "X", 1, [["hello", hostile]]]))
    wild = {"advertise": "tcp://127.0.0.1:*", "peers": {}, "dialed": a.cluster, "reply": True}
    peer.send(msgpack.packb([V, "default", "Y", 1, [["hello", wild]]]))

    api = dealer(a.api)
    api.send(b"\x00\x01garbage")
    api.send(msgpack.packb([7, "req", 1, "status", {}]))
    api.send(msgpack.packb([V, "req", 2, "no-such-op", {}]))
    # Batches: one that lies about its count, one that is not payloads, one with a
    # payload over max_payload between two good ones (only that one is refused).
    batches = [
        [3, "survivor", 3, pack_batch([b"a", b"b"])],
        [6, "survivor", 2, msgpack.packb([b"a", 7])],
        [8, "survivor", 3, pack_batch([b"ok", b"x" * (2 * 1024 * 1024), b"ok"])],
    ]
    api.send(msgpack.packb([V, "pub", batches], use_bin_type=True))
    replies = [msgpack.unpackb(api.recv()) for _ in range(5) if api.poll(5000)]
    assert [r[1] for r in replies] == ["rep", "rep", "rep", "nack", "ack"]
    assert [r[4]["code"] for r in replies[:3]] == ["malformed", "bad_version", "unknown_op"]
    assert "protocol 7" in replies[1][4]["message"]
    refused = replies[3][2]
    assert [(ref, code, n) for ref, code, _, n in refused] == [
        (3, "malformed", 3),
        (6, "malformed", 2),
        (9, "too_large", 1),
    ]
    assert [run[0] for run in replies[4][2]] == [8, 10]  # refs 8 and 10 got seqs 2 and 3
    assert [run[1] for run in replies[4][2]] == [2, 3]

    sub = zmq.Context.instance().socket(zmq.XSUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(a.pub)
    sub.send(b"\x05 not a subscription")
    sub.send(b"\x01bad\x00topic\x00")

    errors = wait_for(
        lambda: (e := a.status()["errors"]).get("invalid_topic") and e["malformed"] >= 8 and e,
        10,
        "errors to be counted (the XSUB's last)",
    )
    assert errors["malformed"] >= 8
    assert errors["too_large"] == 1
    assert errors["bad_version"] == 2
    assert errors["unknown_op"] == 1
    assert errors["invalid_topic"] == 1
    assert a.status()["counters"]["ignored_unknown_peer"] == 1
    assert a.proc.poll() is None

    with a.client() as client:
        assert client.publish("survivor", b"accepted after").seq == 4
    assert [subscription.recv(5).data for _ in range(4)] == [
        b"accepted before",
        b"ok",
        b"ok",
        b"accepted after",
    ]
    subscription.close()
    logs = a.logs()
    assert "bad_input code=malformed" in logs and "bad_input code=bad_version" in logs


def test_invalid_publishes_are_refused_with_reasons(cluster: Cluster) -> None:
    a = cluster.start("A", max_payload=1000)
    with Client(a.api) as client:
        with pytest.raises(PublishError, match="too_large: payload is 1001 bytes"):
            client.publish("t", b"x" * 1001)
        for topic, why in [("", "empty"), ("a\x00b", "NUL"), ("é" * 128, "256 bytes")]:
            with pytest.raises(PublishError, match=why):
                client.publish(topic, b"x")
        with pytest.raises(RequestError, match="invalid_topic"):
            client.members("")
        assert client.publish("t", b"x" * 1000).seq == 1
    errors = a.status()["errors"]
    assert errors == {"too_large": 1, "invalid_topic": 4}


def test_cli_rejects_bad_arguments_with_clear_errors(cluster: Cluster, tmp_path) -> None:
    empty_topic = cluster.run("publish", "", "x")
    assert empty_topic.returncode == 2 and "topic is empty" in empty_topic.stderr
    long_topic = cluster.run("publish", "t" * 256, "x")
    assert long_topic.returncode == 2 and "255" in long_topic.stderr
    no_node = cluster.run(
        "publish", "t", "x", "--node", f"tcp://127.0.0.1:{free_port()}", "--timeout", "0.5"
    )
    assert no_node.returncode == 1 and "no zdps node at" in no_node.stderr
    bad_endpoint = cluster.run("start", "--cluster", "localhost:80")
    assert bad_endpoint.returncode == 2 and "not an endpoint" in bad_endpoint.stderr
    wildcard = cluster.run("start", "--cluster", "tcp://0.0.0.0:7710")
    assert wildcard.returncode == 2 and "advertise" in wildcard.stderr
    config = tmp_path / "bad.toml"
    config.write_text('node_id = "x"\nsurprise = 1\n')
    unknown = cluster.run("start", "--config", str(config))
    assert unknown.returncode == 2 and "unknown configuration key(s): surprise" in unknown.stderr
    config.write_text("node_id = [\n")
    broken = cluster.run("start", "--config", str(config))
    assert broken.returncode == 2 and "not valid TOML" in broken.stderr
    config.write_text("peer_timeout = 0.1\n")
    timing = cluster.run("start", "--config", str(config))
    assert timing.returncode == 2 and "peer_timeout" in timing.stderr
    missing = cluster.run("subscribe")
    assert missing.returncode == 2 and "Missing argument" in missing.stderr


def test_port_in_use_is_a_clear_startup_error(cluster: Cluster) -> None:
    a = cluster.start("A")
    clash = cluster.run(
        "start",
        "--node-id",
        "B",
        "--cluster",
        a.cluster,
        "--api",
        f"tcp://127.0.0.1:{free_port()}",
        "--pub",
        f"tcp://127.0.0.1:{free_port()}",
        "--batch-pub",
        f"tcp://127.0.0.1:{free_port()}",
    )
    assert clash.returncode == 1
    assert "cannot start node B" in clash.stderr and "Address already in use" in clash.stderr
