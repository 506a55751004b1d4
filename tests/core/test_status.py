"""The status view (zdps/core/status.py): what ``zdps status`` shows of one node.

* The reply holds the ``info`` keys (handed in by the daemon) plus exactly the keys
  docs/PROTOCOL.md §8.3 lists for ``status`` (read from the spec's row), with the
  detector's, each peer's, seed's and clash's sub-keys as listed there, and every
  counter under its fixed name.
* Each value is read from the part that owns it: peers from membership, the ring,
  the overlay's group counts, the topics being sequenced, the history held, the
  publishes still waiting for an answer, the pause, the counters and the errors.
* Everything that counts publishes counts messages, not batches: a batch of ``n`` is
  ``n`` in the history, the counters, ``fanout_sent`` and ``pending_acks``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.core.helpers import cluster, placed, topic_owned_by
from zdps.core.node import NodeCore
from zdps.core.ring import HashRing
from zdps.core.status import COUNTERS
from zdps.topics import exact_group, prefix_group
from zdps.wire import LEVEL_REPLICATED

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[2]


def spec_status_keys() -> dict[str, set[str]]:
    """docs/PROTOCOL.md §8.3's ``status`` row: its top-level keys, each with its sub-keys."""
    spec = ROOT.joinpath("docs/PROTOCOL.md").read_text()
    row = next(line for line in spec.splitlines() if line.startswith("| `status`"))
    text = row[row.index("the `info` keys plus `") + len("the `info` keys plus `") :]
    text = text[: text.index("`")]
    keys: dict[str, set[str]] = {}
    depth, name, current = 0, "", ""
    for char in text + ",":
        if char.isalnum() or char == "_":
            name += char
            continue
        if name:
            if depth == 0:
                current = name
                keys[current] = set()
            elif depth == 1:
                keys[current].add(name)
            name = ""
        depth += (char == "{") - (char == "}")  # peers[{...}]: the list adds no level
    return keys


SPEC = spec_status_keys()
STATUS_KEYS = set(SPEC)
DETECTOR_KEYS = SPEC["detector"]
PEER_KEYS = SPEC["peers"]
INFO = {
    "version": "0.1.0",
    "pid": 4242,
    "endpoints": {
        "cluster": "tcp://*:1",
        "advertise": "tcp://a:1",
        "api": "ipc://x",
        "pub": "ipc://y",
    },
}


def test_status_has_the_info_keys_and_the_documented_ones() -> None:
    core = NodeCore("a", 7_000_000, "prod", "tcp://a:1", [], 100.0, info=INFO)
    status = core.status(102.5)
    assert status.keys() == INFO.keys() | STATUS_KEYS
    assert {k: status[k] for k in INFO} == INFO
    assert (status["node"], status["scope"], status["incarnation"]) == ("a", "prod", 7_000_000)
    assert status["detector"].keys() == DETECTOR_KEYS
    assert status["uptime_s"] == 2.5
    assert status["peers"] == []
    assert status["ring"] == {"nodes": ["a"], "digest": HashRing(["a"]).digest()}
    assert status["groups"] == {"local": 0, "cluster": 0}
    assert (status["topics_sequenced"], status["history"]) == (
        0,
        {"topics": 0, "messages": 0, "clashes": 0},
    )
    assert (status["pending_acks"], status["paused"], status["errors"]) == (0, False, {})
    assert status["counters"] == dict.fromkeys(COUNTERS, 0)
    assert (status["seeds"], status["clashes"]) == ([], [])


def test_seed_and_clash_entries_have_the_documented_keys() -> None:
    core = NodeCore("a", 7, "prod", "tcp://a:1", ["tcp://a:1", "tcp://b:1"], 100.0, info=INFO)
    core.start(100.0)
    core.membership.clashes["tcp://c:1"] = (3, 100.5)
    status = core.status(101.0)
    own, other = status["seeds"]
    assert own.keys() == other.keys() == SPEC["seeds"]
    assert (own["state"], own["node"]) == ("self", "a")
    assert (other["state"], other["waiting_s"], other["hellos"]) == ("waiting", 1.0, 1)
    (clash,) = status["clashes"]
    assert clash == {"endpoint": "tcp://c:1", "incarnation": 3, "seen_s_ago": 0.5}
    assert clash.keys() == SPEC["clashes"]


def test_status_reads_each_value_from_the_part_that_owns_it() -> None:
    net = cluster("abc")
    topic = topic_owned_by("a", "abc")
    net.subscribe("a", exact_group(topic))
    net.subscribe("a", prefix_group("x."))
    net.subscribe("b", exact_group(topic))
    net.subscribe("b", exact_group("other"))
    net.run_until_quiet()
    net.publish("c", topic, b"1")
    net.publish("a", topic, b"2")
    net.run_until_quiet()
    net.hold("a", "b")  # b's answer to the next one waits
    net.publish("b", topic_owned_by("a", "abc", prefix="u"), b"3")
    net.run_until_quiet()
    net.inject("a", b"junk")
    status = net.core("a").status(net.clock)
    assert [p["node"] for p in status["peers"]] == ["b", "c"]
    for peer in status["peers"]:
        assert peer.keys() == PEER_KEYS
        assert (peer["endpoint"], peer["state"], peer["suspect"]) == (
            net.endpoint(peer["node"]),
            "alive",
            False,
        )
    assert {p["node"]: p["fanout_sent"] for p in status["peers"]} == {"b": 2, "c": 0}
    assert status["ring"]["nodes"] == ["a", "b", "c"]
    assert status["groups"] == {"local": 2, "cluster": 3}
    assert status["topics_sequenced"] == 2
    assert status["history"] == {"topics": 2, "messages": 3, "clashes": 0}
    assert status["counters"]["owned_published"] == 3
    assert status["errors"] == {"malformed": 1}
    assert net.core("b").status(net.clock)["pending_acks"] == 1


# ---------------------------------------------------------------- batches


def replicated_batch_waiting(n: int):
    """Owner ``a`` (replica ``b``) holds a replicated batch of ``n`` from a client of
    ``c``: ``b`` and ``c`` have a member each, ``b``'s confirmation has not arrived."""
    net = cluster("abc")
    topic = placed("abc", "ab")
    net.subscribe("b", exact_group(topic))
    net.subscribe("c", exact_group(topic))
    net.run_until_quiet()
    net.hold("b", "a")
    ref = net.publish_run("c", topic, [b"%d" % i for i in range(n)], LEVEL_REPLICATED)
    net.run_until_quiet()
    return net, topic, ref


def test_status_counts_the_messages_of_a_batch() -> None:
    net, _, ref = replicated_batch_waiting(4)
    owner, replica, entry = (net.core(n).status(net.clock) for n in "abc")
    assert owner["history"] == {"topics": 1, "messages": 4, "clashes": 0}
    assert replica["history"] == {"topics": 1, "messages": 4, "clashes": 0}
    assert owner["counters"]["owned_published"] == 4
    assert owner["counters"]["fanout_sent"] == 8  # 4 to b (its store copy), 4 to c
    assert {p["node"]: p["fanout_sent"] for p in owner["peers"]} == {"b": 4, "c": 4}
    assert (entry["counters"]["published"], entry["counters"]["routed_to_owner"]) == (4, 4)
    assert entry["counters"]["fanout_received"] == entry["counters"]["delivered"] == 4
    assert replica["counters"]["replica_stored"] == replica["counters"]["delivered"] == 4
    assert entry["pending_acks"] == 4  # publishes waiting, not batches
    net.release("b", "a")
    net.run_until_quiet()
    assert net.acks("c") == {ref + i: [1 + i, 2, 2] for i in range(4)}
    assert [net.core(n).status(net.clock)["pending_acks"] for n in "abc"] == [0, 0, 0]


def test_pending_acks_counts_the_messages_of_a_replicated_batch_at_its_owner() -> None:
    """The owner waits for its replica: the same 4 publishes its entry node waits for."""
    net, _, _ = replicated_batch_waiting(4)
    assert net.core("c").status(net.clock)["pending_acks"] == 4
    assert net.core("a").status(net.clock)["pending_acks"] == 4
    assert net.core("a").owner.replication.pending == 4
