"""Loss notices (zdps/daemon/notices.py, docs/PROTOCOL.md §9.6) on a real XPUB: owed
for each topic that lost messages, with the last position delivered, sent once there
is room in every queue they go to, and only to SUBs that asked for them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import zmq

from zdps.daemon import notices as module
from zdps.daemon.notices import LossNotices
from zdps.topics import LOST_PREFIX
from zdps.wire.delivery import decode_header

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def pub() -> Iterator[tuple[zmq.Socket, zmq.Socket]]:
    ctx = zmq.Context()
    xpub = ctx.socket(zmq.XPUB)
    xpub.setsockopt(zmq.XPUB_NODROP, 1)
    xpub.setsockopt(zmq.SNDHWM, 2)
    xpub.bind("inproc://notices")
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 2)
    sub.connect("inproc://notices")
    sub.subscribe(LOST_PREFIX + b"news\x00")
    assert xpub.poll(2000) and xpub.recv() == b"\x01" + LOST_PREFIX + b"news\x00"
    yield xpub, sub
    ctx.destroy(0)


def test_a_notice_names_the_last_position_delivered_and_repeats_until_its_time(pub) -> None:
    xpub, sub = pub
    notices = LossNotices(xpub)
    deliveries = [("news", 5, 7, 3, b"batch"), ("other", 1, 7, 1, b"batch")]
    notices.after(deliveries, {"news": 3}, 0.0)
    notices.after([("news", 8, 7, 2, b"batch")], {}, 0.1)  # delivered since
    assert set(notices.pending) == {"news"}
    notices.send(0.2)
    topic, header, body = sub.recv_multipart()
    assert (topic, decode_header(header), body) == (LOST_PREFIX + b"news\x00", (9, 7, "lost"), b"")
    notices.send(0.3)  # not due yet
    assert not sub.poll(100)
    notices.send(0.2 + module.NOTICE_INTERVAL)  # due again: a SUB set aside gets this one
    assert sub.poll(1000) and decode_header(sub.recv_multipart()[1]) == (9, 7, "lost")
    notices.send(module.NOTICE_FOR + 0.1)  # long after the last loss: no more
    assert not notices.pending and not sub.poll(100)


def test_a_full_queue_misses_a_notice_and_gets_a_later_one(pub) -> None:
    xpub, sub = pub
    notices = LossNotices(xpub)
    for _ in range(8):  # fill the SUB's queue (inproc: SNDHWM + RCVHWM)
        try:
            xpub.send_multipart([LOST_PREFIX + b"news\x00", b"x", b"y"], zmq.DONTWAIT)
        except zmq.Again:
            break
    notices.after([("news", 1, 1, 1, b"batch")], {"news": 1}, 0.0)
    notices.send(0.0)  # lost for the full SUB, without waiting
    while sub.poll(100):
        frames = sub.recv_multipart()
    assert frames[1] == b"x"
    notices.send(module.NOTICE_INTERVAL)
    assert sub.poll(1000) and decode_header(sub.recv_multipart()[1]) == (1, 1, "lost")
