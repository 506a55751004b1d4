"""The Phoenix V2 protocol of one socket (zdps/gateway/phoenix.py), frame by frame,
against what phoenixframework/phoenix answers (../shared/reference/phoenix-v2.md)."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zdps.gateway.phoenix import (
    MAX_CHANNELS,
    BadFrame,
    Join,
    Leave,
    PhoenixSocket,
    Publish,
    binary_push,
    encode,
    push,
)

pytestmark = pytest.mark.timeout(30)

OK_EMPTY = {"status": "ok", "response": {}}


def frame(*fields) -> str:
    return json.dumps(list(fields))


def joined(*topics: str) -> PhoenixSocket:
    sock = PhoenixSocket()
    for topic in topics:
        sock.on_text(frame("1", "1", topic, "phx_join", {}))
    return sock


def test_a_heartbeat_is_answered_ok_with_its_ref() -> None:
    assert PhoenixSocket().on_text(frame(None, "7", "phoenix", "heartbeat", {})) == [
        encode([None, "7", "phoenix", "phx_reply", OK_EMPTY])
    ]


def test_a_join_asks_for_the_topic_and_a_second_join_closes_the_first() -> None:
    sock = PhoenixSocket()
    assert sock.on_text(frame("1", "2", "topics:matrix", "phx_join", {})) == [
        Join("1", "2", "topics:matrix")
    ]
    assert sock.on_text(frame("5", "6", "topics:matrix", "phx_join", {})) == [
        encode(["1", "1", "topics:matrix", "phx_close", {}]),
        Join("5", "6", "topics:matrix"),
    ]
    assert sock.channels == {"topics:matrix": "5"}


def test_at_most_100_channels_and_no_join_of_what_is_no_topic() -> None:
    sock = joined(*(f"t{i}" for i in range(MAX_CHANNELS)))
    (refused,) = sock.on_text(frame("9", "9", "one.more", "phx_join", {}))
    assert json.loads(refused)[4] == {
        "status": "error",
        "response": {"reason": "too many channels joined"},
    }
    for topic in ("phoenix", "", "a\x00b"):
        (answer,) = PhoenixSocket().on_text(frame("1", "1", topic, "phx_join", {}))
        assert json.loads(answer) == [
            None, "1", topic, "phx_reply",
            {"status": "error", "response": {"reason": "unmatched topic"}},
        ]  # fmt: skip


def test_leave_replies_ok_then_closes_and_an_unjoined_topic_is_unmatched() -> None:
    sock = joined("t")
    assert sock.on_text(frame("1", "3", "t", "phx_leave", {})) == [
        Leave("t"),
        encode(["1", "3", "t", "phx_reply", OK_EMPTY]),
        encode(["1", "1", "t", "phx_close", {}]),
    ]
    (answer,) = sock.on_text(frame("1", "4", "t", "publish", ["e", {}]))
    assert json.loads(answer)[4]["response"] == {"reason": "unmatched topic"}


def test_publish_carries_event_and_body_and_anything_else_is_refused() -> None:
    sock = joined("t")
    (publish,) = sock.on_text(frame("1", "8", "t", "publish", ["event", {"message": "ü"}]))
    assert publish == Publish("1", "8", "t", '["event",{"message":"ü"}]'.encode())
    for event, payload in (("shout", {}), ("publish", {"a": 1}), ("publish", [1, 2])):
        (answer,) = sock.on_text(frame("1", "9", "t", event, payload))
        assert json.loads(answer)[4]["status"] == "error"


@pytest.mark.parametrize(
    "text", ["", "{", "[]", '{"a":1}', '[1,"1","t","e",{}]', '["1","1",2,"e",{}]', "[1,2,3,4]"]
)
def test_what_is_no_v2_frame_is_a_bad_frame(text: str) -> None:
    with pytest.raises(BadFrame):
        PhoenixSocket().on_text(text)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
FIELD = st.none() | st.sampled_from(["1", "phoenix", "t", "phx_join", "publish"]) | JSON


@given(st.lists(FIELD, min_size=4, max_size=6) | JSON)
def test_any_json_is_answered_or_a_bad_frame_and_nothing_else(value) -> None:
    sock = joined("t")
    with contextlib.suppress(BadFrame):
        for action in sock.on_text(json.dumps(value)):
            assert isinstance(action, str | Join | Leave | Publish)


def test_pushes_carry_the_sockets_own_join_ref_compact_and_unescaped() -> None:
    sock = PhoenixSocket()
    sock.on_text(frame("42", "1", "topics:matrix", "phx_join", {}))
    assert sock.channel("topics:matrix") == ("42", False) and sock.channel("other") is None
    assert push("42", "topics:matrix", "event", {"message": "red pill or blue pill? ü"}, None) == (
        '["42",null,"topics:matrix","event",{"message":"red pill or blue pill? ü"}]'
    )


def test_a_join_with_since_asks_for_recovery_and_positions() -> None:
    sock = PhoenixSocket()
    since = {"since": {"epoch": 3, "seq": 17}}
    assert sock.on_text(frame("1", "2", "t", "phx_join", since)) == [Join("1", "2", "t", (3, 17))]
    assert sock.channel("t") == ("1", True)
    assert sock.on_text(frame("1", "3", "u", "phx_join", {"since": None})) == [
        Join("1", "3", "u", None)
    ]
    assert sock.channel("u") == ("1", True)
    assert push("1", "t", "event", {}, (3, 18)) == '["1","3.18","t","event",{}]'
    for bad in ({"epoch": -1, "seq": 1}, {"epoch": 1}, [1, 2], {"epoch": 1, "seq": True}):
        (answer,) = PhoenixSocket().on_text(frame("1", "4", "t", "phx_join", {"since": bad}))
        assert json.loads(answer)[4]["status"] == "error", bad
    sock.on_text(frame("1", "5", "t", "phx_join", {}))  # joined again without: no positions
    assert sock.channel("t") == ("1", False)


def test_a_binary_push_is_the_v2_layout() -> None:
    expected = b"\x00\x01\x01\x07" + b"1tmessage\x00\xff"
    assert binary_push("1", "t", "message", b"\x00\xff") == expected
    assert binary_push("1", "t" * 256, "message", b"") is None
