"""The core's client API (zdps/core/clients.py): client frames, driven through the
simulated cluster (tests/core/node_net.py).

* Bad input is counted by code, nacked where there is a ref, and never costs the
  valid entries around it: a bad publish entry is nacked under its ref (unless it is
  0) and the others are published.
* A bad request gets ``rep false`` under its ref (0 if it has none); a frame that
  cannot be read at all gets ``rep`` with ref 0, and nothing reaches the cluster.
"""

from __future__ import annotations

import pytest

from tests.core.helpers import MAX_PAYLOAD, cluster, hello
from zdps.topics import prefix_group
from zdps.wire import (
    E_INVALID_TOPIC,
    E_MALFORMED,
    E_TOO_LARGE,
    pack,
)

pytestmark = pytest.mark.timeout(120)


# ---------------------------------------------------------------- publishes


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
    assert net.replies("a")[ref4] == (True, {"topic": "ok", "owner": net.owner("ok"), "nodes": {}})
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
