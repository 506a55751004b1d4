"""The core's client API (zdps/core/clients.py): client frames, driven through the
simulated cluster (tests/core/node_net.py).

* Bad input is counted by code, nacked where there is a ref, and never costs the
  valid entries around it: a bad publish entry (a batch ``[ref, topic, n, batch,
  level?]``) is nacked under its ref (unless it is 0), for its ``n`` refs when ``n``
  is readable, and the others are published. A payload over the limit costs only its
  own ref: the rest of its batch is published, with consecutive seqs.
* A bad request gets ``rep false`` under its ref (0 if it has none); a frame that
  cannot be read at all gets ``rep`` with ref 0, and nothing reaches the cluster.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.helpers import FAST, MAX_PAYLOAD, cluster, hello
from zdps.topics import prefix_group
from zdps.wire import (
    API_NACK,
    E_INVALID_TOPIC,
    E_MALFORMED,
    E_TOO_LARGE,
    FORWARD,
    LEVEL_OWNER,
    PROTOCOL_VERSION,
    pack,
)
from zdps.wire.api import publish_entry
from zdps.wire.batches import MAX_BATCH, pack_batch
from zdps.wire.limits import U64

V = PROTOCOL_VERSION

pytestmark = pytest.mark.timeout(120)


# ---------------------------------------------------------------- publishes


def test_bad_publish_entries_are_nacked_and_the_others_processed() -> None:
    net = cluster("abc")
    for node in "abc":
        net.subscribe(node, prefix_group(""))
    net.run_until_quiet()
    names = ("good", "empty", "nul", "long", "big", "text", "int", "wide", "level", "good2")
    r = {name: net.ref() for name in (*names, "edge", "zero", "huge")}
    r["count"] = net.refs(3)  # a batch of 3 whose blob holds 2
    r["strs"] = net.refs(2)  # one of 2 whose payloads are text
    r["split"] = net.refs(5)  # one of 5 of which the third is too large
    one = pack_batch([b"x"])
    entries = [
        publish_entry(r["good"], "good", [b"1"], LEVEL_OWNER),
        [r["empty"], "", 1, one],
        [r["nul"], "a\x00b", 1, one],
        [r["long"], "x" * 256, 1, one],
        [r["big"], "big", 1, pack_batch([b"x" * (MAX_PAYLOAD + 1)])],
        [r["text"], "text", 1, "not bytes"],
        [r["int"], 5, 1, one],
        [r["wide"], "é" * 128, 1, one],  # 256 bytes of UTF-8
        [0, "", 1, pack_batch([b"no ref, no nack"])],
        ["junk"],
        42,
        [r["level"], "five", 1, one, "fields"],
        [r["good"], "good", b"1"],  # a v1 entry [ref, topic, payload]
        publish_entry(r["good2"], "good2", [b"2"], LEVEL_OWNER),
        [r["edge"], "y" * 255, 1, pack_batch([b"z" * MAX_PAYLOAD])],
        [r["zero"], "zero", 0, pack_batch([])],
        [r["huge"], "huge", MAX_BATCH + 1, one],
        [r["count"], "count", 3, pack_batch([b"a", b"b"])],
        [r["strs"], "strs", 2, pack(["a", "b"])],
        publish_entry(
            r["split"], "split", [b"s0", b"s1", b"o" * (MAX_PAYLOAD + 1), b"s3", b"s4"], 1
        ),
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
        r["level"]: E_MALFORMED,
        r["good"]: E_MALFORMED,  # the v1 entry: its ref was also the first good one's
        r["zero"]: E_MALFORMED,  # no valid n: its ref alone
        r["huge"]: E_MALFORMED,
        **dict.fromkeys(range(r["count"], r["count"] + 3), E_MALFORMED),  # all 3 refs
        **dict.fromkeys(range(r["strs"], r["strs"] + 2), E_MALFORMED),
        r["split"] + 2: E_TOO_LARGE,  # only the payload over the limit
    }
    runs = [e for kind, entries in net.frames("b") if kind == API_NACK for e in entries]
    assert [(ref, n) for ref, _, _, n in runs if ref in (r["count"], r["strs"])] == [
        (r["count"], 3),  # one nack entry for the batch
        (r["strs"], 2),
    ]
    assert net.error_codes("b") == {E_INVALID_TOPIC: 6, E_TOO_LARGE: 2, E_MALFORMED: 9}
    split = [r["split"] + i for i in (0, 1, 3, 4)]
    assert set(net.acks("b")) == {r["good"], r["good2"], r["edge"], *split}
    assert [net.acks("b")[ref][0] for ref in split] == [1, 2, 3, 4]  # consecutive seqs
    published = {
        "good": [b"1"],
        "good2": [b"2"],
        "y" * 255: [b"z" * MAX_PAYLOAD],
        "split": [b"s0", b"s1", b"s3", b"s4"],
    }
    for node in "abc":
        assert {d.topic for d in net.received(node)} == set(published)
        for topic, payloads in published.items():
            assert [d.payload for d in net.received(node, topic)] == payloads
    assert net.core("b").counters["published"] == 7  # messages, not entries


@FAST
@given(
    n=st.integers(1, 20),
    ref=st.sampled_from([0, 1, U64 - 20, U64 - 1]),
    fault=st.sampled_from(["count", "text", "topic", "level"]),
)
def test_a_bad_batch_is_nacked_for_each_of_its_refs(n: int, ref: int, fault: str) -> None:
    net = cluster("ab")
    entry = publish_entry(ref, "t", [b"p"] * n, LEVEL_OWNER)
    if fault == "count":
        entry[3] = pack_batch([b"p"] * (n + 1))
    elif fault == "text":
        entry[3] = pack(["p"] * n)
    elif fault == "topic":
        entry[1] = "bad\x00topic"
    else:
        entry.append(7)
    net.publish_batch("a", [entry])
    net.run_until_quiet()
    overflow = ref + n > U64  # its refs would not all fit: malformed, whatever else
    code = E_INVALID_TOPIC if fault == "topic" and not overflow else E_MALFORMED
    assert net.error_codes("a") == {code: 1}
    assert net.acks("a") == {} and net.entries(FORWARD) == []
    runs = [e for kind, entries in net.frames("a") if kind == API_NACK for e in entries]
    if ref == 0:  # no ack wanted, none refused
        assert runs == []
    elif overflow:  # the refs that exist are refused
        assert [(e[0], e[1], e[3]) for e in runs] == [(ref, E_MALFORMED, U64 - ref)]
    else:
        assert [(e[0], e[1], e[3]) for e in runs] == [(ref, code, n)]


# ---------------------------------------------------------------- requests


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
    assert net.replies("a")[ref4] == (
        True,
        {"topic": "ok", "owner": net.owner("ok"), "nodes": {}, "queues": {}},
    )
    assert net.error_codes("a") == {E_MALFORMED: 4, "unknown_op": 1, E_INVALID_TOPIC: 1}


def test_delete_of_invalid_topic_is_refused() -> None:
    net = cluster("ab")
    ref = net.request("a", "delete", {"topic": "bad\x00topic"})
    assert net.replies("a")[ref] == (
        False,
        {"code": E_INVALID_TOPIC, "message": "topic contains a NUL character"},
    )
    assert net.error_codes("a") == {E_INVALID_TOPIC: 1}


@pytest.mark.parametrize("args", [{"history": -1, "ttl": 5}, {"history": 5, "ttl": 0}, {"ttl": 5}])
def test_create_refuses_a_bad_retention(args: dict) -> None:
    net = cluster("ab")
    ref = net.request("a", "create", {"topic": "t", **args})
    net.run_until_quiet()
    assert net.replies("a")[ref][0] is False
    assert net.replies("a")[ref][1]["code"] == E_MALFORMED
    assert all("t" not in net.core(n).history.configured for n in "ab")


# ---------------------------------------------------------------- frames


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\xc1", E_MALFORMED),
        (pack({"pub": 1}), E_MALFORMED),
        (pack([1, "pub", []]), "bad_version"),  # a client of protocol v1
        (pack([V + 1, "pub", []]), "bad_version"),
        (pack([V, 5]), E_MALFORMED),
        (pack([V, "shout", []]), "unknown_op"),
        (pack([V, "pub", {"not": "a list"}]), E_MALFORMED),
        (pack([V, "pub", [], "extra"]), E_MALFORMED),
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


def test_a_cluster_envelope_on_the_api_says_whose_seed_is_wrong() -> None:
    """A node that has this API endpoint as a seed: the log names it and the mistake."""
    net = cluster("ab")
    net.client_frame("a", net.envelope("x", [hello("x")]))
    (reply,) = net.replies("a").values()
    assert reply[1]["code"] == "unknown_op"
    assert "a cluster envelope from node 'x': this is an API endpoint" in reply[1]["message"]
    ((_, code, message),) = net.errors["a"]
    assert code == "unknown_op" and "from node 'x'" in message and "from client " in message


# ---------------------------------------------------------------- robustness
# This crashed the node (an exception out of the core) when first written.


@pytest.mark.parametrize("op", [["members"], {"op": 1}])
def test_unhashable_request_op_is_refused_not_raised(op) -> None:
    net = cluster("ab")
    net.request_fields("a", [7, op, {}])
    assert net.replies("a") == {7: (False, net.replies("a")[7][1])}
    assert net.replies("a")[7][1]["code"] in (E_MALFORMED, "unknown_op")
