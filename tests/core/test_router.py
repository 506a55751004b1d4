"""Routing rules, driven through the simulated cluster of NodeCores (tests/core/node_net.py).

* The topic's owner (``ring.owner``) sequences: seq 1, 2, 3 ... without gaps whatever
  the entry node, and every subscriber sees the same total order.
* Exactly one copy per interested node (exact or prefix member, or both), none to
  nodes without interest, local delivery at the owner when it has a member.
* Acks carry ``[ref, seq, nodes, subscribers]``; ref 0 wants none.
* When rings disagree a forward is forwarded again, at most ``MAX_HOPS`` times.
* A lost owner gives ``owner_lost``, a silent one ``timeout``.
* ``delete`` ends a topic with a ``closed`` header after every earlier message; the
  next publish opens a larger epoch at seq 1.
* Bad input is counted by code, nacked where there is a ref, and never costs the
  valid entries around it.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.core.node_net import SimNet, mesh, wait_for
from zdps.client.protocol import ClientProtocol, PublishResult
from zdps.core.ring import HashRing
from zdps.core.tunables import CoreConfig
from zdps.topics import exact_group, prefix_group
from zdps.wire import (
    ACK,
    API_ACK,
    CLOSED,
    E_INVALID_TOPIC,
    E_MALFORMED,
    E_OWNER_LOST,
    E_TIMEOUT,
    E_TOO_LARGE,
    E_TOO_MANY_HOPS,
    FANOUT,
    FORWARD,
    HELLO,
    NACK,
    PEERS,
    PING,
    STORE,
    encode_api,
    pack,
)
from zdps.wire.limits import MAX_HOPS

pytestmark = pytest.mark.timeout(60)

MAX_PAYLOAD = 1024
CONFIG = CoreConfig(max_payload=MAX_PAYLOAD)


def cluster(names: str | list[str], config: CoreConfig = CONFIG) -> SimNet:
    return mesh(names, config)


def topic_owned_by(owner: str, nodes, prefix: str = "t", among=None) -> str:
    """The first ``<prefix><i>`` that ``owner`` owns on a ring of ``nodes``.

    With ``among=(subset, other_owner)`` the topic must also be owned by
    ``other_owner`` on a ring of ``subset``.
    """
    ring = HashRing(nodes)
    for i in range(10_000):
        topic = f"{prefix}{i}"
        if ring.owner(topic) != owner:
            continue
        if among is None or HashRing(among[0]).owner(topic) == among[1]:
            return topic
    raise AssertionError("no such topic")


def fanouts_by_destination(net: SimNet, topic: str) -> Counter:
    """Copies delivered at each node: fan-out copies, and replicas' copies marked to deliver."""
    copies = Counter(sent.dst for sent, entry in net.entries(FANOUT) if entry[0] == topic)
    copies.update(sent.dst for sent, entry in net.entries(STORE) if entry[0] == topic and entry[4])
    return copies


# ---------------------------------------------------------------- owner and sequence


def test_owner_sequences_publishes_from_every_entry_node() -> None:
    net = cluster("abcde")
    topic = topic_owned_by("d", "abcde")
    net.subscribe("b", exact_group(topic))
    net.subscribe("c", prefix_group("t"))
    net.run_until_quiet()
    refs = {}
    for entry in "abcde":
        refs[entry] = net.publish(entry, topic, entry.encode())
        net.run_until_quiet()
    forwards = net.entries(FORWARD)
    assert sorted(s.src for s, _ in forwards) == ["a", "b", "c", "e"]
    assert {s.dst for s, _ in forwards} == {"d"}
    assert all(entry[3] == 1 for _, entry in forwards)  # one hop
    assert {n: net.core(n).counters["owned_published"] for n in "abcde"} == {
        "a": 0,
        "b": 0,
        "c": 0,
        "d": 5,
        "e": 0,
    }
    assert {s.src for s, _ in net.entries(FANOUT)} == {"d"}
    for entry in "abcde":
        assert net.acks(entry)[refs[entry]][0] == "abcde".index(entry) + 1
    epoch = net.stamps("b", topic)[0][0]
    for node in "bc":
        assert net.stamps(node, topic) == [(epoch, seq) for seq in range(1, 6)]
        assert [d.payload for d in net.received(node, topic)] == [b"a", b"b", b"c", b"d", b"e"]


def test_concurrent_publishes_get_gapless_seqs_and_one_total_order() -> None:
    net = cluster("abcd")
    topic = topic_owned_by("a", "abcd")
    for node in "abcd":
        net.subscribe(node, exact_group(topic))
    net.run_until_quiet()
    sent = []
    for i in range(24):
        entry = "abcd"[(i * 7) % 4 if i % 5 else 3]
        sent.append((entry, net.publish(entry, topic, f"{entry}{i}".encode())))
    net.run_until_quiet()
    orders = {node: [d.payload for d in net.received(node, topic)] for node in "abcd"}
    assert len({tuple(o) for o in orders.values()}) == 1
    (epoch,) = {e for e, _ in net.stamps("a", topic)}
    for node in "abcd":
        assert net.stamps(node, topic) == [(epoch, s) for s in range(1, 25)]
    order = orders["a"]
    for entry in "abcd":  # each entry node's publishes keep their order ...
        published = [f"{e}{i}".encode() for i, (e, _) in enumerate(sent) if e == entry]
        assert [p for p in order if p[:1] == entry.encode()] == published
        # ... and each ack names the seq its message was delivered with.
        seqs = [net.acks(entry)[ref][0] for e, ref in sent if e == entry]
        assert [order[s - 1] for s in seqs] == published


def test_exactly_one_copy_per_interested_node() -> None:
    net = cluster("abcde")
    topic = topic_owned_by("a", "abcde")
    net.subscribe("a", exact_group(topic))  # the owner has a member: local delivery
    net.subscribe("b", exact_group(topic))
    net.subscribe("c", prefix_group(topic[:1]))
    for group in (exact_group(topic), prefix_group(""), exact_group(topic)):
        net.subscribe("d", group)  # exact twice and the firehose: still one node
    net.subscribe("e", exact_group(topic + "x"))  # e has no interest in topic
    net.run_until_quiet()
    refs = [net.publish(entry, topic, entry.encode()) for entry in "abcde"]
    net.run_until_quiet()
    assert fanouts_by_destination(net, topic) == {"b": 5, "c": 5, "d": 5}
    assert all(s.src == "a" for s, _ in net.entries(FANOUT))
    for node in "abcd":
        assert len(net.received(node, topic)) == 5
    assert net.received("e") == []
    acks = [net.acks(entry)[ref] for entry, ref in zip("abcde", refs, strict=True)]
    assert sorted(seq for seq, _, _ in acks) == [1, 2, 3, 4, 5]
    # nodes: b, c, d and the owner itself; subscribers: 1 + 1 + 3 + 1.
    assert {(nodes, subscribers) for _, nodes, subscribers in acks} == {(4, 6)}


def test_no_copy_at_all_without_interest() -> None:
    net = cluster("abc")
    topic = topic_owned_by("b", "abc")
    net.subscribe("c", exact_group(topic + ".other"))
    net.run_until_quiet()
    ref = net.publish("a", topic, b"x")
    net.run_until_quiet()
    assert net.entries(FANOUT) == []
    assert net.deliveries == {"a": [], "b": [], "c": []}
    assert net.acks("a") == {ref: [1, 0, 0]}


def test_prefix_members_get_every_topic_under_the_prefix() -> None:
    net = cluster("abc")
    net.subscribe("b", prefix_group("news."))
    net.subscribe("c", exact_group("news.eu"))
    net.run_until_quiet()
    topics = ["news.eu", "news.us.east", "news.", "news", "newsx", "sports.news.x"]
    refs = {t: net.publish("a", t, t.encode()) for t in topics}
    net.run_until_quiet()
    assert [d.topic for d in net.received("b")] == ["news.eu", "news.us.east", "news."]
    assert [d.topic for d in net.received("c")] == ["news.eu"]
    assert fanouts_by_destination(net, "news.eu") == {
        n: 1 for n in "bc" if n != net.owner("news.eu")
    }
    acks = net.acks("a")
    assert acks[refs["news.eu"]][1:] == [2, 2]
    assert acks[refs["news.us.east"]][1:] == [1, 1]
    assert acks[refs["newsx"]][1:] == [0, 0]


def test_publish_with_ref_zero_gets_no_ack() -> None:
    net = cluster("abc")
    topic = topic_owned_by("c", "abc")
    net.subscribe("b", exact_group(topic))
    net.run_until_quiet()
    assert net.publish("a", topic, b"quiet", ack=False) == 0
    net.run_until_quiet()
    assert net.publish("c", topic, b"quiet too", ack=False) == 0
    net.run_until_quiet()
    assert [d.payload for d in net.received("b", topic)] == [b"quiet", b"quiet too"]
    assert [entry[2] for _, entry in net.entries(FORWARD)] == [0]  # no ack id
    assert net.entries(ACK) == []
    assert net.frames("a") == [] and net.frames("c") == []
    assert net.core("a").pending == 0


def test_a_batch_keeps_its_order_and_travels_in_one_frame() -> None:
    net = cluster("abc")
    topic = topic_owned_by("c", "abc")
    for node in "abc":
        net.subscribe(node, exact_group(topic))
    net.run_until_quiet()
    seqs = {}
    for entry in "ac":  # through a non-owner, then at the owner itself
        refs = [net.ref() for _ in range(5)]
        net.publish_batch(entry, [[r, topic, f"{entry}{i}".encode()] for i, r in enumerate(refs)])
        net.run_until_quiet()
        seqs[entry] = [net.acks(entry)[r][0] for r in refs]
    assert seqs == {"a": [1, 2, 3, 4, 5], "c": [6, 7, 8, 9, 10]}
    expected = [f"{e}{i}".encode() for e in "ac" for i in range(5)]
    for node in "abc":
        assert [d.payload for d in net.received(node, topic)] == expected
        assert [s for _, s in net.stamps(node, topic)] == list(range(1, 11))
    # One envelope per destination per turn, whatever else shares it.
    fanout_frames = Counter()
    for sent in net.sent:
        count = sum(len(m[1]) for m in sent.messages if m[0] in (FANOUT, STORE))
        if count:
            assert sent.src == "c" and count == 5
            fanout_frames[sent.dst] += 1
    assert fanout_frames == {"a": 2, "b": 2}
    forwards = [m for s in net.sent if s.src == "a" for m in s.messages if m[0] == FORWARD]
    assert [len(m[1]) for m in forwards] == [5]


# ---------------------------------------------------------------- forwarding


def split_views(net: SimNet, a: str, c: str) -> None:
    net.cut(a, c)
    wait_for(net, lambda: c not in net.core(a).ring and a not in net.core(c).ring)
    net.run_until_quiet()


def test_forward_to_a_non_owner_is_forwarded_again() -> None:
    net = cluster("abc")
    topic = topic_owned_by("c", "abc", among=("ab", "b"))
    net.subscribe("b", exact_group(topic))
    net.run_until_quiet()
    split_views(net, "a", "c")  # a's ring is {a, b}: a thinks b owns the topic
    assert net.core("a").ring.owner(topic) == "b" and net.core("b").ring.owner(topic) == "c"
    before = len(net.sent)
    ref = net.publish("a", topic, b"via b")
    net.run_until_quiet()
    hops = [(s.src, s.dst, e[3]) for s, e in net.entries(FORWARD) if net.sent.index(s) >= before]
    assert hops == [("a", "b", 1), ("b", "c", 2)]
    assert net.acks("a")[ref] == [1, 1, 1]
    assert [d.payload for d in net.received("b", topic)] == [b"via b"]


def line(names: list[str], topic: str) -> list[str]:
    """``names`` ordered so that each node's owner of ``topic`` among {prev, self, next} is next."""
    return list(reversed(HashRing(names).successors(topic, len(names))))


@pytest.mark.parametrize("length", [MAX_HOPS + 1, MAX_HOPS + 2])
def test_forwarding_is_bounded_by_max_hops(length: int) -> None:
    assert MAX_HOPS == 3  # PROTOCOL.md section 10
    topic = "x"
    chain = line([f"n{i}" for i in range(length)], topic)
    net = SimNet(config=CONFIG)
    for i, name in enumerate(chain):
        for other in chain[:i]:
            if other != chain[i - 1]:
                net.cut(name, other)  # each node only ever meets its neighbours
        net.add(name, [chain[i - 1]] if i else [])
    net.subscribe(chain[-1], exact_group(topic))
    net.advance(3.0)
    for i, name in enumerate(chain):
        expected = {chain[j] for j in (i - 1, i + 1) if 0 <= j < length}
        assert set(net.core(name).membership.alive()) == expected
        if i + 1 < length:
            assert net.core(name).ring.owner(topic) == chain[i + 1]
    before = len(net.sent)
    ref = net.publish(chain[0], topic, b"far")
    net.run_until_quiet()
    forwards = [
        (s.src, s.dst, e[3]) for s, e in net.entries(FORWARD) if net.sent.index(s) >= before
    ]
    assert forwards == [(chain[i], chain[i + 1], i + 1) for i in range(MAX_HOPS)]
    if length == MAX_HOPS + 1:  # the owner is exactly MAX_HOPS away: delivered
        assert net.acks(chain[0]) == {ref: [1, 1, 1]}
        assert [d.payload for d in net.received(chain[-1])] == [b"far"]
    else:  # one hop too many: refused, the refusal travels back
        assert net.acks(chain[0]) == {}
        assert net.nacks(chain[0])[ref][0] == E_TOO_MANY_HOPS
        assert net.received(chain[-1]) == []
        assert [s.src for s, _ in net.entries(NACK)] == list(reversed(chain[1 : MAX_HOPS + 1]))
    for name in chain:
        assert net.core(name).pending == 0


# ---------------------------------------------------------------- failures


def test_owner_dying_before_the_ack_gives_owner_lost() -> None:
    net = cluster("abc")
    topic = topic_owned_by("b", "abc")
    ref = net.publish("a", topic, b"lost")
    net.crash("b")  # the forward was still in flight
    assert net.core("a").pending == 1
    wait_for(net, lambda: net.log_lines("a", "peer b down"))
    (declared,) = net.log_lines("a", "peer b down (dead)")
    assert net.nacks("a")[ref][0] == E_OWNER_LOST
    assert net.answered_at("a", ref) == declared
    assert net.acks("a") == {}
    assert net.core("a").pending == 0


def test_owner_restarting_before_the_ack_gives_owner_lost_at_once() -> None:
    net = cluster("abc")
    topic = topic_owned_by("b", "abc")
    ref = net.publish("a", topic, b"lost")
    net.crash("b")  # the forward is lost with it
    net.advance(0.3)
    net.restart("b")
    net.run_until_quiet()
    assert net.nacks("a") == {ref: (E_OWNER_LOST, net.nacks("a")[ref][1])}
    assert net.answered_at("a", ref) == 0.3
    ref2 = net.publish("a", topic, b"again")
    net.run_until_quiet()
    assert net.acks("a")[ref2][0] == 1  # the new incarnation starts a new sequence


def test_silent_owner_gives_timeout_after_ack_timeout() -> None:
    net = cluster("abc", CoreConfig(max_payload=MAX_PAYLOAD, ack_timeout=0.5))
    topic = topic_owned_by("b", "abc")
    net.advance(0.05)
    net.cut("a", "b", both=False)
    start = net.clock
    ref = net.publish("a", topic, b"void")
    net.advance(0.45)
    assert net.frames("a") == []
    answered = wait_for(net, lambda: net.frames("a"), timeout=1.0)
    assert net.nacks("a") == {ref: (E_TIMEOUT, net.nacks("a")[ref][1])}
    assert start + 0.5 <= answered <= start + 0.5 + CONFIG.heartbeat_interval + 1e-6
    assert net.core("a").pending == 0
    assert "b" in net.core("a").ring  # b is not dead, just silent
    net.heal()
    net.advance(3.0)
    assert set(net.nacks("a")) == {ref} and net.acks("a") == {}


# ---------------------------------------------------------------- delete


def test_delete_closes_after_earlier_messages_and_restarts_at_seq_one() -> None:
    net = cluster("abcd")
    topic = topic_owned_by("a", "abcd")
    net.subscribe("b", exact_group(topic))
    net.subscribe("c", prefix_group(topic[:1]))
    net.subscribe("a", exact_group(topic))
    net.run_until_quiet()
    for i in range(3):
        net.publish("b", topic, f"old{i}".encode())  # all queued behind each other
    ref = net.request("b", "delete", {"topic": topic})
    net.publish("b", topic, b"new0")
    net.run_until_quiet()
    net.publish("d", topic, b"new1")
    net.run_until_quiet()
    assert net.acks("b")[ref] == [4, 3, 3]
    expected = None
    for node in "abc":
        got = [
            (d.header.get("type"), d.header["seq"], d.payload) for d in net.received(node, topic)
        ]
        assert got == [
            (None, 1, b"old0"),
            (None, 2, b"old1"),
            (None, 3, b"old2"),
            ("closed", 4, b""),
            (None, 1, b"new0"),
            (None, 2, b"new1"),
        ]
        epochs = [d.header["epoch"] for d in net.received(node, topic)]
        assert epochs[:4] == [epochs[0]] * 4 and epochs[4:] == [epochs[4]] * 2
        assert epochs[4] > epochs[0]
        assert expected in (None, epochs)
        expected = epochs
    assert [e for s, e in net.entries(CLOSED)] == [[topic, 4, expected[0]]] * 2
    assert net.received("d") == []


def test_delete_of_unknown_topic_closes_an_empty_epoch() -> None:
    net = cluster("ab")
    topic = topic_owned_by("b", "ab")
    net.subscribe("a", exact_group(topic))
    net.run_until_quiet()
    ref = net.request("a", "delete", {"topic": topic})
    net.run_until_quiet()
    assert net.acks("a")[ref] == [1, 1, 1]
    (closed,) = net.received("a", topic)
    assert closed.header["type"] == "closed" and closed.header["seq"] == 1
    net.publish("a", topic, b"first")
    net.run_until_quiet()
    assert net.stamps("a", topic)[0][1] == 1
    assert net.stamps("a", topic)[0][0] > closed.header["epoch"]


def test_delete_of_invalid_topic_is_refused() -> None:
    net = cluster("ab")
    ref = net.request("a", "delete", {"topic": "bad\x00topic"})
    assert net.replies("a")[ref] == (
        False,
        {"code": E_INVALID_TOPIC, "message": "topic contains a NUL character"},
    )
    assert net.error_codes("a") == {E_INVALID_TOPIC: 1}


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\xc1\xc1garbage", E_MALFORMED),
        (pack({"not": "a list"}), E_MALFORMED),
        (pack([]), E_MALFORMED),
        (pack([2, "sim", "b", 1, []]), "bad_version"),
        (pack([1, "sim", "b", 1]), E_MALFORMED),
        (pack([1, "sim", 5, 1, []]), E_MALFORMED),
        (pack([1, "sim", "", 1, []]), E_MALFORMED),
        (pack([1, "sim", "b", "1", []]), E_MALFORMED),
        (pack([1, "sim", "b", 1, {}]), E_MALFORMED),
        (pack([1, 7, "b", 1, []]), E_MALFORMED),
    ],
)
def test_malformed_cluster_frames_are_counted(frame: bytes, code: str) -> None:
    net = cluster("ab")
    before = len(net.sent)
    net.inject("a", frame)
    assert net.error_codes("a") == {code: 1}
    assert [c for _, c, _ in net.errors["a"]] == [code]
    assert len(net.sent) == before
    assert net.converged()


def valid_forward(topic: str, ack_id: int) -> list:
    return [FORWARD, [[topic, b"ok", ack_id, 1]]]


@pytest.mark.parametrize(
    "bad",
    [
        [FANOUT, "not a list"],
        [FANOUT, [["t", 1, 1]]],
        [FORWARD, [["t", "text payload", 0, 1]]],
        [FORWARD, [[5, b"x", 0, 1]]],
        [FORWARD, 5],
        [ACK, [5]],
        [NACK, [[1, "x"]]],
        [CLOSED, [["t", 1]]],
        [PING, 5],
        [PING, {}, "extra"],
        pytest.param(["nope", []], id="unknown-kind"),
        [],
        [["unhashable"], 1],
    ],
)
def test_malformed_messages_from_a_peer_are_counted_and_the_rest_is_processed(bad: list) -> None:
    net = cluster("ab")
    topic = topic_owned_by("a", "ab")
    net.subscribe("a", exact_group(topic))
    net.run_until_quiet()
    net.inject("a", net.envelope("b", [bad, valid_forward(topic, 77)]))
    net.run_until_quiet()
    code = "unknown_kind" if bad[:1] == ["nope"] else E_MALFORMED
    assert net.error_codes("a") == {code: 1}
    assert [d.payload for d in net.received("a", topic)] == [b"ok"]
    assert [e for s, e in net.entries(ACK, src="a")] == [[77, 1, 1, 1, 1]]
    assert net.converged()


def test_messages_from_an_unknown_sender_are_ignored() -> None:
    net = cluster("ab")
    topic = topic_owned_by("a", "ab")
    net.subscribe("a", exact_group(topic))
    net.inject("a", net.envelope("z", [valid_forward(topic, 5)]))
    net.inject("a", net.envelope("b", [valid_forward(topic, 6)], incarnation=1))
    net.run_until_quiet()
    assert net.received("a") == []
    assert net.core("a").counters["ignored_unknown_peer"] == 2
    assert net.core("a").errors == {}


def test_bad_publish_entries_are_nacked_and_the_others_processed() -> None:
    net = cluster("abc")
    for node in "abc":
        net.subscribe(node, prefix_group(""))
    net.run_until_quiet()
    r = {
        name: net.ref()
        for name in ("good", "empty", "nul", "long", "big", "text", "int", "wide", "good2", "edge")
    }
    entries = [
        [r["good"], "good", b"1"],
        [r["empty"], "", b"x"],
        [r["nul"], "a\x00b", b"x"],
        [r["long"], "x" * 256, b"x"],
        [r["big"], "big", b"x" * (MAX_PAYLOAD + 1)],
        [r["text"], "text", "not bytes"],
        [r["int"], 5, b"x"],
        [r["wide"], "é" * 128, b"x"],  # 256 bytes of UTF-8
        [0, "", b"no ref, no nack"],
        ["junk"],
        42,
        [r["good"] + 1000, "four", b"x", "fields"],
        [r["good2"], "good2", b"2"],
        [r["edge"], "y" * 255, b"z" * MAX_PAYLOAD],
    ]
    net.publish_batch("b", entries)
    net.run_until_quiet()
    nacks = {ref: code for ref, (code, _) in net.nacks("b").items()}
    assert nacks == {
        r["empty"]: E_INVALID_TOPIC,
        r["nul"]: E_INVALID_TOPIC,
        r["long"]: E_INVALID_TOPIC,
        r["big"]: E_TOO_LARGE,
        r["text"]: E_MALFORMED,
        r["int"]: E_INVALID_TOPIC,
        r["wide"]: E_INVALID_TOPIC,
        r["good"] + 1000: E_MALFORMED,
    }
    assert net.error_codes("b") == {E_INVALID_TOPIC: 6, E_TOO_LARGE: 1, E_MALFORMED: 4}
    assert set(net.acks("b")) == {r["good"], r["good2"], r["edge"]}
    for node in "abc":
        assert [d.topic for d in net.received(node)] in (
            ["good", "good2", "y" * 255],
            ["good", "y" * 255, "good2"],
            ["good2", "good", "y" * 255],
            ["good2", "y" * 255, "good"],
            ["y" * 255, "good", "good2"],
            ["y" * 255, "good2", "good"],
        )
    assert net.core("b").counters["published"] == 3


def test_bad_requests_are_counted_and_answered() -> None:
    net = cluster("ab")
    net.request_fields("a", [101, "members"])  # no args
    net.request_fields("a", [102, "members", []])  # args not a map
    net.request_fields("a", ["ref", "members", {}])  # no usable ref: answered as ref 0
    ref = net.request("a", "no-such-op", {})
    ref2 = net.request("a", "members", {})
    ref3 = net.request("a", "members", {"topic": ""})
    ref4 = net.request("a", "members", {"topic": "ok"})
    codes = {r: result["code"] for r, (ok, result) in net.replies("a").items() if not ok}
    assert codes == {
        101: E_MALFORMED,
        102: E_MALFORMED,
        0: E_MALFORMED,
        ref: "unknown_op",
        ref2: E_MALFORMED,
        ref3: E_INVALID_TOPIC,
    }
    assert net.replies("a")[ref4] == (True, {"topic": "ok", "owner": net.owner("ok"), "nodes": {}})
    assert net.error_codes("a") == {E_MALFORMED: 4, "unknown_op": 1, E_INVALID_TOPIC: 1}


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\xc1", E_MALFORMED),
        (pack({"pub": 1}), E_MALFORMED),
        (pack([2, "pub", []]), "bad_version"),
        (pack([1, 5]), E_MALFORMED),
        (pack([1, "shout", []]), "unknown_op"),
        (pack([1, "pub", {"not": "a list"}]), E_MALFORMED),
        (pack([1, "pub", [], "extra"]), E_MALFORMED),
    ],
)
def test_bad_api_frames_are_answered_with_ref_zero(frame: bytes, code: str) -> None:
    net = cluster("ab")
    sent = len(net.sent)
    net.client_frame("a", frame)
    assert net.replies("a") == {0: (False, net.replies("a")[0][1])}
    assert net.replies("a")[0][1]["code"] == code
    assert net.error_codes("a") == {code: 1}
    assert len(net.sent) == sent  # nothing reached the cluster


# ---------------------------------------------------------------- robustness
# Each of these crashed the node (an exception out of the core, or a delivery the
# daemon's XPUB send dies on) when first written.


@pytest.mark.parametrize("bad", [5, None, {}])
def test_non_list_message_in_an_envelope_is_counted_not_raised(bad) -> None:
    net = cluster("ab")
    net.inject("a", pack([1, "sim", "stranger", 1, [bad]]))
    assert net.error_codes("a") == {E_MALFORMED: 1}


@pytest.mark.parametrize("op", [["members"], {"op": 1}])
def test_unhashable_request_op_is_refused_not_raised(op) -> None:
    net = cluster("ab")
    net.request_fields("a", [7, op, {}])
    assert net.replies("a") == {7: (False, net.replies("a")[7][1])}
    assert net.replies("a")[7][1]["code"] in (E_MALFORMED, "unknown_op")


@pytest.mark.parametrize(
    "bad", [[FANOUT, [[5, 1, 1, b"x"]]], [FANOUT, [["t", 1, 1, "text"]]], [CLOSED, [[5, 1, 1]]]]
)
def test_fanout_entries_with_wrong_types_are_refused(bad: list) -> None:
    net = cluster("ab")
    net.inject("a", net.envelope("b", [bad]))
    assert net.error_codes("a") == {E_MALFORMED: 1}
    assert net.received("a") == []


def test_a_bad_forward_entry_is_refused_alone() -> None:
    # PROTOCOL.md 3.2: entries are checked one by one; a bad one is counted and refused
    # (nack malformed) when it carries an ack id, and every good entry is processed.
    net = cluster("ab")
    topic = topic_owned_by("a", "ab")
    net.subscribe("a", exact_group(topic))
    batch = [[topic, b"1", 11, 1], [topic, "not bytes", 12, 1], [topic, b"3", 13, 1]]
    net.inject("a", net.envelope("b", [[FORWARD, batch], [FORWARD, [[topic, b"4", 14, 1]]]]))
    net.run_until_quiet()
    assert net.error_codes("a") == {E_MALFORMED: 1}
    assert [d.payload for d in net.received("a", topic)] == [b"1", b"3", b"4"]
    acked = [e[0] + i for _, e in net.entries(ACK, src="a") for i in range(e[4])]
    assert acked == [11, 13, 14]
    assert [e[:2] for _, e in net.entries(NACK, src="a")] == [[12, E_MALFORMED]]


# ---------------------------------------------------------------- properties

NAMES = ["a", "b", "c", "d"]
TOPICS = ["t.1", "t.2", "u"]
SUBSCRIPTIONS = {
    "a": [exact_group("t.2")],
    "b": [exact_group("t.1")],
    "c": [prefix_group("t.")],
    "d": [exact_group("u"), prefix_group(""), exact_group("t.1")],
}


def matches(group: bytes, topic: str) -> bool:
    if group.endswith(b"\x00"):
        return group == topic.encode() + b"\x00"
    return topic.encode().startswith(group)


INTERESTED = {t: [n for n in NAMES if any(matches(g, t) for g in SUBSCRIPTIONS[n])] for t in TOPICS}


@settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    data=st.data(),
    ops=st.lists(
        st.tuples(
            st.sampled_from(NAMES),
            st.sampled_from(["pub"] * 6 + ["delete"]),
            st.lists(st.sampled_from(TOPICS), min_size=1, max_size=3),
            st.integers(0, 4),
        ),
        min_size=1,
        max_size=25,
    ),
)
def test_random_interleavings_keep_seq_gapless_and_order_identical(data, ops) -> None:
    net = cluster(NAMES)
    for node, groups in SUBSCRIPTIONS.items():
        for group in groups:
            net.subscribe(node, group)
    net.run_until_quiet()
    issued = []  # (entry, topic, kind, ref, payload)
    for i, (entry, kind, topics, moves) in enumerate(ops):
        if kind == "pub":  # one client frame with 1-3 entries
            batch = [[net.ref(), topic, f"{i}.{j}".encode()] for j, topic in enumerate(topics)]
            net.publish_batch(entry, batch)
            issued += [(entry, topic, kind, ref, payload) for ref, topic, payload in batch]
        else:
            ref = net.request(entry, "delete", {"topic": topics[0]})
            issued.append((entry, topics[0], kind, ref, b""))
        for _ in range(moves):  # deliver a few frames on links of hypothesis's choosing
            links = net.in_flight()
            if not links:
                break
            net.deliver(data.draw(st.sampled_from(links)))
    net.run_until_quiet()

    for topic in TOPICS:
        streams = {
            node: [
                (d.header["epoch"], d.header["seq"], d.header.get("type"), d.payload)
                for d in net.received(node, topic)
            ]
            for node in NAMES
        }
        interested = INTERESTED[topic]
        for node in NAMES:
            if node not in interested:
                assert streams[node] == []
        stream = streams[interested[0]]
        assert all(streams[n] == stream for n in interested)  # one total order
        mine = [op for op in issued if op[1] == topic]
        assert len(stream) == len(mine)  # nothing lost, nothing duplicated
        # Epochs: gapless seqs from 1, each closed ends one, and epochs only grow.
        seq, epoch = 0, None
        for e, s, kind, _ in stream:
            if epoch != e:
                assert seq == 0 and (epoch is None or e > epoch)
                epoch = e
            assert s == seq + 1
            seq = 0 if kind == "closed" else s
        # Each entry node's operations keep their order; acks name the right seq.
        position = {p: i for i, (_, _, kind, p) in enumerate(stream) if kind is None}
        for entry in NAMES:
            pubs = [op for op in mine if op[0] == entry and op[2] == "pub"]
            assert [position[p] for *_, p in pubs] == sorted(position[p] for *_, p in pubs)
            for _, _, _, ref, payload in pubs:
                ack = net.acks(entry)[ref]
                assert ack[0] == stream[position[payload]][1]
                assert ack[1] == len(interested)
    for node in NAMES:  # nothing was refused, nothing is left waiting
        assert net.nacks(node) == {}
        assert net.core(node).pending == 0
        assert net.core(node).errors == {}


KINDS = [FANOUT, FORWARD, ACK, NACK, CLOSED, PING, PEERS, HELLO, "close", "sync", "update"]


def junk(rng: random.Random, depth: int = 0):
    """A random msgpack-able value: what a confused or hostile peer might send."""
    roll = rng.randrange(8 if depth < 2 else 5)
    if roll == 0:
        return rng.choice([0, 1, 3, -1, 2**40])
    if roll == 1:
        return rng.choice(["", "t", "x\x00y", "inproc://b"])
    if roll == 2:
        return rng.choice([b"", b"p", b"t\x00"])
    if roll == 3:
        return rng.choice([None, True, 1.5])
    if roll == 4:
        return rng.choice(KINDS)
    if roll == 5:
        return {junk(rng, 2): junk(rng, depth + 1) for _ in range(rng.randrange(3))}
    return [junk(rng, depth + 1) for _ in range(rng.randrange(6))]


def junk_message(rng: random.Random):
    shape = rng.randrange(3)
    if shape == 0:
        return junk(rng)
    if shape == 1:
        return [rng.choice(KINDS), junk(rng, 1)]
    entries = [[junk(rng, 2) for _ in range(rng.randrange(6))] for _ in range(rng.randrange(4))]
    return [rng.choice(KINDS), entries]


def test_no_message_from_a_peer_can_crash_the_node() -> None:
    """Seeded (so deterministic) junk from an admitted peer is counted, never raised."""
    rng = random.Random(20261121)
    crashes = []
    for _ in range(300):
        messages = [junk_message(rng) for _ in range(rng.randrange(1, 4))]
        net = cluster("ab")
        try:
            net.inject("a", net.envelope("b", messages))
            net.run_until_quiet()
        except Exception as exc:
            crashes.append((messages, exc))
            continue
        assert net.converged()
        assert net.core("a").errors.keys() <= {E_MALFORMED, E_INVALID_TOPIC, "unknown_kind"}
    assert crashes == []


def test_a_batch_to_one_topic_is_acknowledged_by_one_run() -> None:
    """Acks are runs [ref, seq, nodes, subscribers, n]; a batch costs one entry per hop."""
    net = cluster("ab")
    topic = topic_owned_by("b", "ab")
    net.subscribe("b", exact_group(topic))
    net.publish_batch("a", [[ref, topic, b"m"] for ref in range(10, 15)])
    net.run_until_quiet()
    assert [e for _, e in net.entries(ACK, src="b")] == [[1, 1, 1, 1, 5]]
    api_acks = [f[1] for f in net.frames("a") if f[0] == API_ACK]
    assert api_acks == [[[10, 1, 1, 1, 5]]]
    assert net.acks("a") == {10 + i: [1 + i, 1, 1] for i in range(5)}
    outcomes, _ = ClientProtocol().parse(encode_api(API_ACK, api_acks[0]))
    assert outcomes == [(10 + i, PublishResult(1 + i, 1, 1)) for i in range(5)]


@pytest.mark.parametrize(
    "message",
    [
        [FANOUT, [["t", -1, 1, b"x"]]],  # a negative seq cannot be a header field
        [FANOUT, [["t", 1, -1, b"x"]]],  # nor a negative epoch
        [CLOSED, [["t", 1, -5]]],
        [ACK, [[1, 1, 1, 1, 10**12]]],  # an ack run that would keep the node busy
        [ACK, [[1, 1, 1, 1, 0]]],
    ],
)
def test_hostile_entries_from_an_admitted_peer_are_refused(message: list) -> None:
    net = cluster("ab")
    net.inject("a", net.envelope("b", [message]))
    net.run_until_quiet()
    assert net.error_codes("a") == {E_MALFORMED: 1}
    assert net.received("a") == []
