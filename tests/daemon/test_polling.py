"""The loop's receiving helpers (zdps/daemon/polling.py): the poll set, bounded drains,
and ROUTER messages taken apart without recv_multipart."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import zmq

from tests.sockets import until_readable
from zdps.daemon import polling
from zdps.daemon.polling import PollSet, drain, routed
from zdps.readiness import readable

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def pair() -> Iterator[tuple[zmq.Socket, zmq.Socket]]:
    """A ROUTER (inproc) and a DEALER connected to it."""
    ctx = zmq.Context()
    router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    router.bind("inproc://polling")
    dealer.setsockopt(zmq.IDENTITY, b"dealer")
    dealer.connect("inproc://polling")
    yield router, dealer
    ctx.destroy(linger=0)


def test_the_poll_set_reports_what_is_ready_and_forgets_what_is_unregistered(pair) -> None:
    router, dealer = pair
    polls = PollSet()
    polls.register(router, zmq.POLLIN)
    assert polls.poll(0) == []
    dealer.send(b"one")
    ready = dict(polls.poll(5000))
    assert ready.get(router, 0) & zmq.POLLIN
    polls.unregister(router)
    polls.unregister(router)  # twice is harmless
    assert polls.poll(0) == []


def test_a_drain_takes_what_is_queued_and_stops_without_a_failing_receive(pair) -> None:
    router, dealer = pair
    for n in range(5):
        dealer.send(b"%d" % n)
    until_readable(router)
    deadline = time.monotonic() + 10
    got: list[bytes] = []
    while len(got) < 5 and time.monotonic() < deadline:
        got += [frame.bytes for _, frame in drain(router, routed(router))]
    assert got == [b"0", b"1", b"2", b"3", b"4"]
    assert not readable(router)
    assert list(drain(router, routed(router))) == []  # woken for nothing: no error


def test_a_drain_stops_at_its_limit_so_other_sockets_get_their_turn(pair, monkeypatch) -> None:
    router, dealer = pair
    monkeypatch.setattr(polling, "DRAIN_LIMIT", 3)
    for n in range(5):
        dealer.send(b"%d" % n)
    until_readable(router)
    assert [frame.bytes for _, frame in drain(router, routed(router))] == [b"0", b"1", b"2"]
    assert readable(router)  # the rest waits for the next turn


def test_a_message_of_more_than_one_body_frame_is_read_whole_and_given_as_none(pair) -> None:
    router, dealer = pair
    dealer.send_multipart([b"a", b"b", b"c"])
    dealer.send(b"next")
    until_readable(router)
    receive = routed(router)
    assert receive(0) == (b"dealer", None)
    identity, frame = receive(0)
    assert (identity, frame.bytes) == (b"dealer", b"next")
