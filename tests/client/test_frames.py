"""Runs of messages: a list of payloads as the data of one item is that many messages,
added to the frame at C speed, within the window and the frame's limits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.client.scripted import NODE, Clock, Run, ack
from tests.client.test_publishing import refs, shapes
from zdps.client.frames import FRAME_BYTES, PublishFrame
from zdps.client.publishing import publish_many, publish_stream
from zdps.client.session import Session
from zdps.client.steps import Wait
from zdps.wire import E_TIMEOUT
from zdps.wire.batches import MAX_BATCH

pytestmark = pytest.mark.timeout(30)


def test_a_run_joins_the_run_of_its_topic_up_to_the_limit() -> None:
    frame = PublishFrame()
    frame.add("t", b"a")
    assert frame.add_many("t", [b"b", b"c", b"d"], 2) == 2
    assert frame.add_many("u", ["é", b"f"], 5) == 2  # str payloads go as UTF-8
    assert frame.runs == [("t", [b"a", b"b", b"c"]), ("u", ["é".encode(), b"f"])]
    assert (frame.count, frame.size) == (5, 6)
    assert frame.add_many("u", [], 5) == 0 and frame.count == 5


def test_a_run_stops_where_the_frame_is_full_by_bytes() -> None:
    frame = PublishFrame()
    big = b"x" * (FRAME_BYTES // 3 + 1)
    assert frame.add_many("t", [big] * 5, 10) == 3  # the third fills it
    assert frame.full(256) and frame.count == 3


def test_a_run_longer_than_a_batch_may_be_splits_there() -> None:
    frame = PublishFrame()
    assert frame.add_many("t", [b"."] * (MAX_BATCH + 5), MAX_BATCH + 5) == MAX_BATCH + 5
    assert [len(payloads) for _, payloads in frame.runs] == [MAX_BATCH, 5]


@settings(max_examples=200, deadline=None)
@given(
    items=st.lists(
        st.tuples(st.sampled_from("tu"), st.lists(st.binary(max_size=3), max_size=7)),
        max_size=6,
    ),
    window=st.integers(1, 9),
    batch=st.integers(1, 9),
)
def test_runs_and_single_messages_make_the_same_frames(
    items: list, window: int, batch: int
) -> None:
    """An item carrying a list of payloads sends what the same messages one by one
    would: the same frames, refs and windows."""
    singles = [(topic, payload) for topic, payloads in items for payload in payloads]
    runs = [(topic, payloads) for topic, payloads in items]
    assert frames_sent(singles, window, batch) == frames_sent(runs, window, batch)


def frames_sent(messages: list, window: int, batch: int) -> list:
    """The frames a stream sends, each acked as soon as the stream waits."""
    session = Session(NODE, Clock())
    run = Run(publish_stream(session, iter(messages), window, batch, "owner", timeout=5.0))
    frames: list = []
    for _ in range(1000):
        if run.done:
            return [shapes([frame]) for frame in frames]
        sent = run.sends()
        frames += sent
        assert isinstance(run.step, Wait), run.step
        for frame in sent or frames[-1:]:
            mine = refs([frame])[0]
            session.absorb(ack((mine[0], mine[0], 1, 0, len(mine))))
        run.resume()
    raise AssertionError("the stream did not end")


def test_a_run_the_node_stops_reading_in_the_middle_of_is_reported_not_dropped() -> None:
    session = Session(NODE, Clock())
    items = iter([("t", [b"a", b"b", b"c", b"d", b"e"])])
    run = Run(publish_many(session, items, False, 10, 2, 5.0))
    run.resume(True)  # a, b go
    run.resume(False)  # c, d cannot be sent (the node does not read): e is never framed
    assert run.done
    assert [o.code for o in run.emitted] == [E_TIMEOUT] * 3  # c, d, and e: none dropped


def test_a_stream_reports_the_rest_of_a_run_it_could_not_send() -> None:
    session = Session(NODE, Clock())
    items = iter([("t", [b"a", b"b", b"c", b"d", b"e"])])
    run = Run(publish_stream(session, items, 10, 2, "owner", timeout=5.0))
    run.resume(True)  # a, b go
    run.resume(False)  # c, d cannot be sent: e is never framed
    assert isinstance(run.step, Wait)  # for the acks of a and b
    session.absorb(ack((1, 1, 1, 0, 2)))
    run.resume()
    assert run.done
    assert run.result.acked == 2 and [f.code for f in run.result.failures] == [E_TIMEOUT] * 3
