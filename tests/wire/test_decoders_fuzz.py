"""Every decoder of outside input, fed anything: a result or ProtocolError, nothing else.

Bytes straight from a socket (random, or msgpack of any shape), and decoded values of
any shape for the decoders that take them. Any other exception is a bug (h11's rule,
docs/PROTOCOL.md §1). The kinds' own decoders are fuzzed field by field in
test_messages.py; the live fuzzer (tests/fuzz) sends such frames to running nodes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.wire.test_messages import ANY
from zdps.daemon.zap import Rule, answer
from zdps.topics import is_valid_group
from zdps.wire import codec
from zdps.wire.answers import decode_answer
from zdps.wire.api import decode_request
from zdps.wire.batches import check_batch, pack_batch, unpack_batch
from zdps.wire.delivery import decode_batch_header, decode_header
from zdps.wire.errors import ProtocolError
from zdps.wire.gossip import decode_peer_list
from zdps.wire.messages import decode_message

pytestmark = pytest.mark.timeout(120)

FRAMES = (
    st.binary(max_size=64)
    | ANY.map(codec.pack)
    | st.builds(
        lambda payloads, cut: pack_batch(payloads)[:cut],
        st.lists(st.binary(max_size=8), min_size=1, max_size=4),
        st.integers(0, 64),
    )
)

BYTE_DECODERS: dict[str, Callable[[bytes], Any]] = {
    "unpack": codec.unpack,
    "decode_envelope": codec.decode_envelope,
    "decode_api": codec.decode_api,
    "decode_header": decode_header,
    "decode_batch_header": decode_batch_header,
    "unpack_batch": lambda blob: unpack_batch(blob, 2),
    "unpack_batch_limited": lambda blob: unpack_batch(blob, 1, 4),
    "check_batch": lambda blob: check_batch(blob, 3, 16),
}
VALUE_DECODERS: dict[str, Callable[[Any], Any]] = {
    "decode_message": decode_message,
    "decode_request": lambda v: decode_request(v if isinstance(v, list) else [v]),
    "decode_answer": lambda v: decode_answer("rep", v if isinstance(v, list) else [v]),
    "decode_answer_ack": lambda v: decode_answer("ack", v if isinstance(v, list) else [v]),
    "decode_answer_nack": lambda v: decode_answer("nack", v if isinstance(v, list) else [v]),
    "decode_answer_event": lambda v: decode_answer("event", v if isinstance(v, list) else [v]),
    "decode_peer_list": decode_peer_list,
}


DECODERS = {
    **{name: (decode, FRAMES) for name, decode in BYTE_DECODERS.items()},
    **{name: (decode, ANY) for name, decode in VALUE_DECODERS.items()},
}


@settings(max_examples=300, deadline=None)
@pytest.mark.parametrize("name", DECODERS)
@given(data=st.data())
def test_every_decoder_returns_or_refuses(name: str, data: st.DataObject) -> None:
    decode, inputs = DECODERS[name]
    with contextlib.suppress(ProtocolError):
        decode(data.draw(inputs, label="input"))


@settings(max_examples=300, deadline=None)
@given(group=st.binary(max_size=300))
def test_any_subscription_is_a_group_or_not(group: bytes) -> None:
    assert is_valid_group(group) in (True, False)


@settings(max_examples=300, deadline=None)
@given(request=st.lists(st.binary(max_size=40), max_size=9))
def test_any_zap_request_gets_a_reply_of_six_frames(request: list[bytes]) -> None:
    rules = {
        b"zdps-cluster": Rule("curve_peers", lambda key: None),
        b"zdps-clients": Rule("", None),
    }
    reply, code, why = answer(request, rules, lambda domain: ("too_many_clients", "full"))
    assert len(reply) == 6 and reply[0] == b"1.0" and reply[2] in (b"400", b"500") and why
    assert code in ("unauthenticated", "too_many_clients")
