"""The raw PUB's expansion loop (zdps/daemon/expansion.py), compiled and pure Python.

* Both send each payload of a batch as topic, header ``{"seq", "epoch"}`` (the
  documented 29-byte spelling, ``message_header``) and payload, seq counting up.
* Both refuse a batch that is not an array of exactly ``n`` bin payloads with
  ``ProtocolError`` and send none of it; the next batch goes through as usual.
* On an XPUB_NODROP socket both return how many messages found a subscriber's queue
  full: those go to the others all the same, and the full subscriber is left out until
  it catches up (libzmq), so the count is of times one fell behind.
* The compiled loop is the one a daemon uses when it was built (CI has a compiler), and
  ``ZDPS_PURE_PYTHON=1`` turns it off.

Frames are read from a real XPUB through a SUB over inproc.
"""

from __future__ import annotations

import os
import subprocess
import sys

import msgpack
import pytest
import zmq
from hypothesis import given
from hypothesis import strategies as st

from tests.core.helpers import FAST
from zdps.daemon import expansion
from zdps.wire.batches import pack_batch
from zdps.wire.delivery import decode_header, message_header
from zdps.wire.errors import ProtocolError

pytestmark = pytest.mark.timeout(60)

COMPILED, LOOP = expansion.expander()
LOOPS = [expansion.expand_python]
if LOOP == "compiled":
    LOOPS.append(COMPILED)
NAMES = ["python", "compiled"][: len(LOOPS)]
TOPIC = b"room/1\x00"


@pytest.fixture(scope="module")
def pair():
    ctx = zmq.Context()
    pub, sub = ctx.socket(zmq.XPUB), ctx.socket(zmq.SUB)
    pub.xpub_nodrop = 1
    pub.bind("inproc://expansion")
    sub.connect("inproc://expansion")
    sub.subscribe(b"")
    assert pub.poll(5000), "the subscription reaches the XPUB"
    pub.recv()
    yield pub, sub
    ctx.destroy(0)


def received(sub: zmq.Socket) -> list[list[bytes]]:
    """Every message the SUB has (inproc: what was sent is there already)."""
    messages = []
    while sub.poll(0):
        messages.append(sub.recv_multipart())
    return messages


@pytest.mark.parametrize("expand", LOOPS, ids=NAMES)
@FAST
@given(
    payloads=st.lists(st.binary(max_size=300), min_size=1, max_size=70),
    seq=st.integers(1, 2**64 - 100),
    epoch=st.integers(0, 2**64 - 1),
)
def test_each_payload_leaves_as_topic_header_payload(expand, pair, payloads, seq, epoch):
    pub, sub = pair
    assert expand(pub, TOPIC, seq, epoch, len(payloads), pack_batch(payloads)) == 0
    messages = received(sub)
    assert [m[2] for m in messages] == payloads
    assert {m[0] for m in messages} == {TOPIC}
    headers = [message_header(seq + i, epoch) for i in range(len(payloads))]
    assert [m[1] for m in messages] == headers
    assert decode_header(messages[-1][1]) == (seq + len(payloads) - 1, epoch, "message")


def large_payloads() -> list[bytes]:
    return [b"a" * 70_000, b"", b"b" * 300]  # bin32, bin8, bin16


BAD_BATCHES = [
    pytest.param(pack_batch([b"x", b"y"]), 3, id="fewer-than-n"),
    pytest.param(pack_batch([b"x", b"y"]), 1, id="more-than-n"),
    pytest.param(pack_batch([b"x"]) + b"\x00", 1, id="trailing-byte"),
    pytest.param(pack_batch([b"xyz"])[:-1], 1, id="cut-short"),
    pytest.param(msgpack.packb(["text"]), 1, id="str-payload"),
    pytest.param(msgpack.packb([1]), 1, id="int-payload"),
    pytest.param(msgpack.packb({"a": b"x"}), 1, id="a-map"),
    pytest.param(b"", 1, id="empty"),
    pytest.param(b"\xdc\x00", 1, id="short-array-header"),
]


@pytest.mark.parametrize("expand", LOOPS, ids=NAMES)
@pytest.mark.parametrize(("batch", "n"), BAD_BATCHES)
def test_a_malformed_batch_is_refused_whole(expand, pair, batch, n):
    pub, sub = pair
    with pytest.raises(ProtocolError) as refused:
        expand(pub, TOPIC, 7, 1, n, batch)
    assert refused.value.code == "malformed"
    assert received(sub) == []
    expand(pub, TOPIC, 7, 1, 3, pack_batch(large_payloads()))  # the next one goes
    assert [m[2] for m in received(sub)] == large_payloads()


def test_the_daemon_uses_the_compiled_loop_unless_told_not_to() -> None:
    if expansion.compiled is None:
        pytest.skip("zdps was installed without a C compiler: only the Python loop exists")
    assert LOOP == "compiled", "built, and this process's libzmq was found"
    code = "from zdps.daemon.delivery import EXPANSION; print(EXPANSION)"
    for value, want in (("1", "python"), ("0", "compiled")):
        env = {**os.environ, "ZDPS_PURE_PYTHON": value}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30
        )
        assert out.stdout.strip() == want, out.stderr


@pytest.mark.parametrize("expand", LOOPS, ids=NAMES)
def test_a_full_subscriber_is_counted_and_the_others_get_everything(expand) -> None:
    """Over inproc a queue holds SNDHWM + RCVHWM messages: the slow SUB takes 20 of a
    batch of 100, the other one all, and the loop reports one message that found a
    queue full; once the slow SUB has read its queue it gets messages again."""
    ctx = zmq.Context()
    try:
        pub = ctx.socket(zmq.XPUB)
        pub.xpub_nodrop, pub.xpub_verbose, pub.sndhwm = 1, 1, 10
        pub.bind("inproc://full")
        slow, fast = ctx.socket(zmq.SUB), ctx.socket(zmq.SUB)
        slow.rcvhwm, fast.rcvhwm = 10, 1000
        for sock in (slow, fast):
            sock.connect("inproc://full")
            sock.subscribe(b"")
            assert pub.poll(5000)
            pub.recv()
        payloads = [b"%d" % i for i in range(100)]
        assert expand(pub, TOPIC, 1, 1, 100, pack_batch(payloads)) == 1
        assert [m[2] for m in received(fast)] == payloads
        assert [m[2] for m in received(slow)] == payloads[:20]
        pub.getsockopt(zmq.EVENTS)  # takes in "read again" (the daemon's poll does too)
        assert expand(pub, TOPIC, 101, 1, 3, pack_batch(payloads[:3])) == 0
        assert [m[2] for m in received(fast)] == payloads[:3]
        assert [m[2] for m in received(slow)] == payloads[:3]
    finally:
        ctx.destroy(0)
