"""Windowed publishing without sockets: windows, batches, frames, outcomes, early stops."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.client.scripted import NODE, Clock, Run, ack, event, nack, rep, sent
from zdps import FLUSH
from zdps.client.frames import FRAME_BYTES
from zdps.client.protocol import PublishResult
from zdps.client.publishing import publish_many, publish_stream
from zdps.client.session import Session
from zdps.client.steps import Send, Wait
from zdps.settings import MAX_PAYLOAD_LIMIT
from zdps.wire import LEVEL_OWNER, LEVEL_REPLICATED, decode_api, unpack
from zdps.wire.batches import MAX_BATCH, MAX_BATCH_BYTES, pack_batch, unpack_batch
from zdps.wire.publish_entries import PublishDecoder

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def session(clock: Clock) -> Session:
    return Session(NODE, clock)


def counted(n: int, consumed: list[int], topic: str = "t") -> Iterator[tuple[str, bytes]]:
    for i in range(n):
        consumed.append(i)
        yield topic, b"m%d" % i


def refs(frames: list[list]) -> list[list[int]]:
    """The refs of the messages of each publish frame sent (0 for each without an ack):
    an entry's batch of n has n consecutive refs from its own."""
    return [
        [ref + i if ref else 0 for ref, _topic, n, *_ in frame[2] for i in range(n)]
        for frame in frames
    ]


def shapes(frames: list[list]) -> list[list[tuple[int, str, list[bytes]]]]:
    """``(ref, topic, payloads)`` of each entry of each publish frame sent."""
    found = []
    for frame in frames:
        assert frame[1] == "pub"
        entries = []
        for entry in frame[2]:
            # The default level travels only before ``lazy``, which a windowed publisher
            # sets on a batch whose acks it wants and does not wait on next (see lazies).
            assert len(entry) in ((4, 6) if entry[0] else (4,)), entry
            assert entry[4:] in ([], [LEVEL_OWNER, True]), entry
            ref, topic, n, batch = entry[:4]
            entries.append((ref, topic, unpack_batch(batch, n)))
        found.append(entries)
    return found


def lazies(frames: list[list]) -> list[bool]:
    """Whether each publish frame's batches are ``lazy`` (all of a frame's alike)."""
    found = []
    for frame in frames:
        marks = {bool(entry[5:6] and entry[5]) for entry in frame[2]}
        assert len(marks) == 1, frame
        found.append(marks.pop())
    return found


def flushed(items: list, read: list[int]) -> Iterator:
    """``items`` one by one, noting in ``read`` how many were read so far."""
    for item in items:
        read.append(len(read))
        yield item


def stream(
    session: Session, messages: Iterator, window: int, batch: int, ack: str = "owner"
) -> Run:
    return Run(publish_stream(session, messages, window, batch, ack, timeout=5.0))


def codes(outcomes: list) -> list[str | None]:
    return [getattr(o, "code", None) for o in outcomes]


# ---------------------------------------------------------------------- publish_many


def test_publish_many_keeps_its_window_and_reads_nothing_beyond_it(session: Session) -> None:
    consumed: list[int] = []
    run = Run(publish_many(session, counted(6, consumed), True, window=3, batch=1, timeout=5.0))
    assert refs(run.sends()) == [[1], [2], [3]] and consumed == [0, 1, 2]
    assert isinstance(run.step, Wait) and run.step.until == 105.0
    session.absorb(event(999, {}))  # settles nothing: the window stays shut
    run.resume()
    assert run.emitted == [] and isinstance(run.step, Wait)
    session.absorb(ack((2, 20, 1, 0, 1)))
    run.resume()
    assert run.emitted == [PublishResult(20, 1, 0)]
    assert refs(run.sends()) == [[4]] and consumed == [0, 1, 2, 3]
    session.absorb(ack((3, 30, 1, 0, 2), (1, 10, 1, 0, 1)))  # in arrival order
    run.resume()
    assert [o.seq for o in run.emitted] == [20, 30, 31, 10]
    assert refs(run.sends()) == [[5], [6]]
    session.absorb(ack((5, 50, 1, 0, 2)))
    run.resume()
    assert run.done and [o.seq for o in run.emitted] == [20, 30, 31, 10, 50, 51]
    assert session.awaited == {}


def test_publish_many_marks_lazy_only_what_it_does_not_wait_on_next(session: Session) -> None:
    """A full frame with room left in the window is lazy: its acks may be paced. The
    frame sent at a FLUSH (publish_many then waits for everything in flight) and the
    last one are not: their acks come at once. Once the source yielded a FLUSH, a full
    frame leaves when the next item is read, so that a FLUSH right after it makes it
    one that is waited on."""
    items = [("t", b"a"), ("t", b"b"), FLUSH, ("t", b"c"), ("t", b"d"), FLUSH]
    items += [("t", b"e"), ("t", b"f"), ("t", b"g"), ("t", b"h")]
    run = Run(publish_many(session, iter(items), True, window=6, batch=2, timeout=5.0))
    first = run.sends()  # full before any FLUSH: sent at once, lazy
    assert refs(first) == [[1, 2]] and lazies(first) == [True]
    assert isinstance(run.step, Wait)  # at the FLUSH, for its acks
    session.absorb(ack((1, 10, 1, 0, 2)))
    run.resume()
    held = run.sends()  # full, then a FLUSH: waited on
    assert refs(held) == [[3, 4]] and lazies(held) == [False]
    session.absorb(ack((3, 12, 1, 0, 2)))
    run.resume()
    frames = run.sends()  # full, then more: lazy; the last one: not
    assert refs(frames) == [[5, 6], [7, 8]] and lazies(frames) == [True, False]
    session.absorb(ack((5, 14, 1, 0, 4)))
    run.resume()
    assert run.done and len(run.emitted) == 8


def test_the_last_full_frame_of_a_list_is_not_lazy(session: Session) -> None:
    """Reading on in a list cannot block: a full frame waits for the next item, so the
    last one is known and its acks come at once (also for a single message)."""
    run = Run(publish_many(session, [("t", b"only")], True, window=10, batch=1, timeout=5.0))
    frames = run.sends()
    assert refs(frames) == [[1]] and lazies(frames) == [False]
    run = Run(publish_many(session, list(counted(3, [])), True, window=10, batch=1, timeout=5))
    frames = run.sends()
    assert refs(frames) == [[2], [3], [4]] and lazies(frames) == [True, True, False]
    messages = list(counted(4, []))
    frames = Run(publish_stream(session, messages, 10, 2, "owner", timeout=5)).sends()
    assert refs(frames) == [[5, 6], [7, 8]] and lazies(frames) == [True, False]


def test_a_run_that_fills_the_frame_after_a_flush_waits_for_the_next_item(
    session: Session,
) -> None:
    items = iter([FLUSH, ("t", [b"a", b"b"]), FLUSH, ("t", [b"c", b"d"]), ("t", b"e")])
    run = Run(publish_many(session, items, True, window=10, batch=2, timeout=5.0))
    first = run.sends()
    assert refs(first) == [[1, 2]] and lazies(first) == [False]  # a FLUSH came next
    session.absorb(ack((1, 10, 1, 0, 2)))
    run.resume()
    frames = run.sends()
    assert refs(frames) == [[3, 4], [5]] and lazies(frames) == [True, False]


def test_a_held_frame_that_cannot_be_sent_stops_the_stream_and_reports_the_next_item(
    session: Session,
) -> None:
    for second in (b"b", [b"b", b"c"]):  # a message, or a run of them
        items = iter([FLUSH, ("t", b"a"), ("t", second), ("t", b"d")])
        run = Run(publish_many(session, items, True, window=10, batch=1, timeout=5.0))
        assert isinstance(run.step, Send)  # "a", held until the second item was read
        run.resume(False)  # one attempt only: the second item is not sent after it
        expected = 1 + (len(second) if type(second) is list else 1)
        assert run.done and codes(run.emitted) == ["timeout"] * expected
        assert all("not sent" in outcome.message for outcome in run.emitted)


def test_what_was_read_leaves_before_the_source_fails(session: Session) -> None:
    def failing() -> Iterator:
        yield FLUSH
        yield "t", b"a"  # held: a full frame after a FLUSH
        raise ValueError("the source broke")

    run = Run(publish_many(session, failing(), True, window=10, batch=1, timeout=5.0))
    assert refs([sent(run.step)]) == [[1]]  # the held frame goes, then the failure
    with pytest.raises(ValueError, match="broke"):
        run.resume(True)


def test_the_frame_that_fills_the_window_is_not_lazy(session: Session) -> None:
    run = Run(publish_many(session, counted(6, []), True, window=4, batch=2, timeout=5.0))
    frames = run.sends()
    assert refs(frames) == [[1, 2], [3, 4]] and lazies(frames) == [True, False]
    steps = publish_stream(session, counted(6, []), window=4, batch=2, ack="owner", timeout=5)
    frames = Run(steps).sends()
    assert refs(frames) == [[5, 6], [7, 8]] and lazies(frames) == [True, False]


def test_publish_many_counts_a_batch_being_filled_against_the_window(session: Session) -> None:
    run = Run(publish_many(session, counted(20, []), True, window=5, batch=3, timeout=5.0))
    assert refs(run.sends()) == [[1, 2, 3], [4, 5]]
    assert isinstance(run.step, Wait)


def test_publish_many_stops_when_a_frame_cannot_be_sent(session: Session) -> None:
    consumed: list[int] = []
    run = Run(publish_many(session, counted(100, consumed), True, window=10, batch=4, timeout=5.0))
    assert isinstance(run.step, Send)
    run.resume(False)
    assert run.done and consumed == [0, 1, 2, 3]
    assert codes(run.emitted) == ["timeout"] * 4 and "not sent" in run.emitted[0].message
    assert session.awaited == {}


def test_publish_many_without_acks_emits_nothing_unless_a_frame_is_lost(
    session: Session,
) -> None:
    run = Run(publish_many(session, counted(5, []), False, window=1, batch=2, timeout=5.0))
    frames = run.sends()  # the publishes, then a request whose answer says they were read
    assert refs(frames[:3]) == [[0, 0], [0, 0], [0]] and frames[3][1:4] == ["req", 1, "info"]
    session.absorb(rep(1, {}))
    run.resume()
    assert run.done and run.emitted == [] and session.unconfirmed == 0


def test_publish_many_without_acks_reports_what_the_node_did_not_read(
    session: Session, clock: Clock
) -> None:
    run = Run(publish_many(session, counted(3, []), False, window=1, batch=2, timeout=5.0))
    assert len(run.sends()) == 3 and isinstance(run.step, Wait)
    clock.now += 5.0  # no answer: the node is not reading (stopped, saturated, gone)
    run.resume()
    assert run.done and codes(run.emitted) == ["timeout"] * 3
    assert "not confirmed" in run.emitted[0].message
    assert session.unconfirmed == 0  # reported here, not again at close


def test_publish_many_stops_once_a_timeout_shows_the_node_is_silent(
    session: Session, clock: Clock
) -> None:
    consumed: list[int] = []
    clock.now = 101.0  # the node last spoke at 100, before anything was sent
    run = Run(publish_many(session, counted(10, consumed), True, window=3, batch=1, timeout=5.0))
    run.sends()
    clock.now = 106.0
    run.resume()
    assert run.done and consumed == [0, 1, 2]
    assert codes(run.emitted) == ["timeout"] * 3 and "#1 " in run.emitted[0].message
    assert session.awaited == {} and session.absorb(ack((1, 1, 1, 0, 3))) == []  # late


def test_publish_many_goes_on_after_a_timeout_while_the_node_talks(
    session: Session, clock: Clock
) -> None:
    clock.now = 101.0
    run = Run(publish_many(session, counted(10, []), True, window=3, batch=1, timeout=5.0))
    run.sends()
    clock.now = 103.0
    session.absorb(ack((2, 20, 1, 0, 1)))
    run.resume()
    assert [o.seq for o in run.emitted] == [20]
    run.sends()
    clock.now = 106.0
    run.resume()
    assert codes(run.emitted[1:]) == ["timeout", "timeout"]  # #1 and #3 only
    assert isinstance(run.step, Send)  # the node answered after they were sent: go on


def test_closing_publish_many_early_forgets_its_refs(session: Session) -> None:
    run = Run(publish_many(session, counted(10, []), True, window=3, batch=1, timeout=5.0))
    run.sends()
    assert len(session.awaited) == 3
    run.op.close()
    assert session.awaited == {}


# ---------------------------------------------------------------------- publish_stream


def test_publish_stream_keeps_its_window_and_counts_runs(session: Session) -> None:
    consumed: list[int] = []
    steps = publish_stream(
        session, counted(20, consumed), window=7, batch=3, ack="owner", timeout=5
    )
    run = Run(steps)
    assert refs(run.sends()) == [[1, 2, 3], [4, 5, 6], [7]] and len(consumed) == 7
    session.absorb(ack((1, 1, 1, 0, 6)))  # one run for two frames
    session.absorb(nack((7, "too_large", "no", 1)))
    run.resume()
    assert refs(run.sends()) == [[8, 9, 10], [11, 12, 13], [14]]
    session.absorb(ack((8, 7, 1, 0, 7)))
    run.resume()
    assert refs(run.sends()) == [[15, 16, 17], [18, 19, 20]]
    session.absorb(ack((15, 14, 1, 0, 6)))
    run.resume()
    assert run.done and (run.result.acked, codes(run.result.failures)) == (19, ["too_large"])
    assert session.streams == []


def test_publish_stream_drops_acks_after_the_deadline(session: Session, clock: Clock) -> None:
    run = stream(session, counted(8, []), window=4, batch=4)
    assert refs(run.sends()) == [[1, 2, 3, 4]]
    clock.now = 104.0
    session.absorb(event(999, {}))  # the node is alive, just slow
    clock.now = 105.0
    run.resume()
    assert refs(run.sends()) == [[5, 6, 7, 8]]
    session.absorb(ack((1, 1, 1, 0, 8)))  # the first frame's acks are late
    run.resume()
    assert run.done and (run.result.acked, codes(run.result.failures)) == (4, ["timeout"] * 4)


def test_publish_stream_stops_when_the_node_is_unreachable(session: Session, clock: Clock) -> None:
    consumed: list[int] = []
    clock.now = 101.0
    run = Run(
        publish_stream(session, counted(100, consumed), window=4, batch=2, ack="owner", timeout=5)
    )
    assert len(run.sends()) == 2
    clock.now = 106.0
    run.resume()
    assert run.done and run.result.acked == 0 and len(consumed) == 4
    assert codes(run.result.failures) == ["timeout"] * 4

    consumed.clear()
    run = Run(
        publish_stream(session, counted(100, consumed), window=4, batch=2, ack="owner", timeout=5)
    )
    run.resume(False)
    assert run.done and len(consumed) == 2 and "not sent" in run.result.failures[0].message


def test_publish_stream_sends_the_replicated_level(session: Session) -> None:
    run = Run(
        publish_stream(session, counted(2, []), window=4, batch=2, ack="replicated", timeout=5)
    )
    sent = [[1, "t", 2, pack_batch([b"m0", b"m1"]), LEVEL_REPLICATED, True]]  # lazy
    assert run.sends()[0][2] == sent


def test_publish_many_sends_the_replicated_level(session: Session) -> None:
    messages = [("t", b"a"), ("u", b"b")]
    run = Run(publish_many(session, iter(messages), "replicated", 4, 2, 5.0))
    assert run.sends()[0][2] == [
        [1, "t", 1, pack_batch([b"a"]), LEVEL_REPLICATED, True],
        [2, "u", 1, pack_batch([b"b"]), LEVEL_REPLICATED, True],
    ]


@pytest.mark.parametrize(("window", "batch"), [(0, 1), (1, 0)])
def test_windows_and_batches_hold_at_least_one(session: Session, window: int, batch: int) -> None:
    with pytest.raises(ValueError):
        next(publish_stream(session, iter([]), window, batch, "owner", 5.0))
    with pytest.raises(ValueError):
        next(publish_many(session, iter([]), True, window, batch, 5.0))


def test_publish_stream_counts_acks_so_it_needs_them(session: Session) -> None:
    with pytest.raises(ValueError):
        next(publish_stream(session, iter([]), 10, 10, "none", 5.0))


# ---------------------------------------------------------------------- frames and batches

RUNS = [("t", b"a"), ("t", b"b"), ("u", b"c"), ("u", b"d"), ("u", b"e"), ("t", b"f")]


def publisher(kind: str, session: Session, messages: Iterator, window: int, batch: int) -> Run:
    """``publish_many`` (with acks) or ``publish_stream``, at the owner level."""
    if kind == "many":
        return Run(publish_many(session, messages, True, window, batch, timeout=5.0))
    return Run(publish_stream(session, messages, window, batch, "owner", timeout=5.0))


def settled(kind: str, run: Run) -> list:
    """The outcomes of a finished run, one per message (``None`` for each ack counted
    by a stream, its failures after them)."""
    assert run.done
    if kind == "many":
        return run.emitted
    return [None] * run.result.acked + run.result.failures


@pytest.mark.parametrize("kind", ["many", "stream"])
def test_each_run_of_a_topic_travels_as_one_batch(session: Session, kind: str) -> None:
    run = publisher(kind, session, iter(RUNS), window=100, batch=100)
    assert shapes(run.sends()) == [
        [(1, "t", [b"a", b"b"]), (3, "u", [b"c", b"d", b"e"]), (6, "t", [b"f"])]
    ]
    session.absorb(ack((1, 10, 1, 0, 2), (3, 20, 1, 0, 3), (6, 12, 1, 0, 1)))
    run.resume()
    outcomes = settled(kind, run)
    if kind == "many":
        assert [o.seq for o in outcomes] == [10, 11, 20, 21, 22, 12]
    assert codes(outcomes) == [None] * 6 and session.awaited == {} and session.streams == []


@pytest.mark.parametrize("kind", ["many", "stream"])
def test_a_frame_leaves_at_batch_messages_whatever_their_topics(
    session: Session, kind: str
) -> None:
    """A frame is full at ``batch`` messages; a topic's run goes on in the next frame,
    and refs are consecutive across frames."""
    run = publisher(kind, session, iter(RUNS), window=100, batch=4)
    assert shapes(run.sends()) == [
        [(1, "t", [b"a", b"b"]), (3, "u", [b"c", b"d"])],
        [(5, "u", [b"e"]), (6, "t", [b"f"])],
    ]
    session.absorb(ack((1, 1, 1, 0, 6)))
    run.resume()
    assert codes(settled(kind, run)) == [None] * 6


@pytest.mark.parametrize("kind", ["many", "stream"])
def test_a_frame_leaves_at_frame_bytes_of_payload(session: Session, kind: str) -> None:
    quarter = FRAME_BYTES // 4
    sizes = [quarter, quarter, quarter, quarter - 1, 1, 7]  # the fifth makes FRAME_BYTES
    topics = ["t", "t", "u", "u", "u", "t"]
    messages = [(topic, b"x" * size) for topic, size in zip(topics, sizes, strict=True)]
    run = publisher(kind, session, iter(messages), window=100, batch=100)
    frames = run.sends()
    assert refs(frames) == [[1, 2, 3, 4, 5], [6]]
    assert [[(r, t, [len(p) for p in ps]) for r, t, ps in f] for f in shapes(frames)] == [
        [(1, "t", sizes[:2]), (3, "u", sizes[2:5])],
        [(6, "t", sizes[5:])],
    ]
    session.absorb(ack((1, 1, 1, 0, 6)))
    run.resume()
    assert codes(settled(kind, run)) == [None] * 6


def sending(run: Run) -> list[tuple[int, str, list[bytes]]]:
    """The entries of the frame ``run`` is sending, which is then sent."""
    assert isinstance(run.step, Send), run.step
    (frame,) = shapes([unpack(run.step.frame)])
    run.resume(True)
    return frame


def test_a_flush_sends_the_frame_being_filled_at_once(session: Session) -> None:
    read: list[int] = []
    items = [FLUSH, ("t", b"a"), ("t", b"b"), FLUSH, FLUSH, ("u", b"c"), ("t", b"d"), FLUSH]
    items.append(("t", b"e"))
    run = publisher("stream", session, flushed(items, read), window=100, batch=100)
    # Sent at the FLUSH, before anything after it is read; a FLUSH with nothing being
    # filled (the first, and the second in a row) sends nothing.
    assert len(read) == 4 and sending(run) == [(1, "t", [b"a", b"b"])]
    assert len(read) == 8 and sending(run) == [(3, "u", [b"c"]), (4, "t", [b"d"])]
    assert len(read) == 9 and sending(run) == [(5, "t", [b"e"])]
    assert isinstance(run.step, Wait)
    session.absorb(ack((1, 1, 1, 0, 5)))
    run.resume()
    assert codes(settled("stream", run)) == [None] * 5 and session.awaited == {}


def test_at_a_flush_publish_many_sends_and_reports_what_is_in_flight(session: Session) -> None:
    """FLUSH: the source has nothing more for now. The frame leaves, and the outcomes of
    what is in flight are taken in and reported before the source is read again (a
    stdin publish that then blocks on its read knows what was acknowledged)."""
    read: list[int] = []
    items = [FLUSH, ("t", b"a"), ("t", b"b"), FLUSH, FLUSH, ("u", b"c"), FLUSH, ("t", b"d")]
    run = publisher("many", session, flushed(items, read), window=100, batch=100)
    assert len(read) == 4 and sending(run) == [(1, "t", [b"a", b"b"])]
    assert isinstance(run.step, Wait) and len(read) == 4  # nothing more is read yet
    session.absorb(ack((1, 1, 1, 0, 2)))
    run.resume()
    assert [o.seq for o in run.emitted] == [1, 2]  # reported before reading on
    assert len(read) == 7 and sending(run) == [(3, "u", [b"c"])]
    assert isinstance(run.step, Wait)
    session.absorb(ack((3, 3, 1, 0, 1)))
    run.resume()
    assert len(read) == 8 and sending(run) == [(4, "t", [b"d"])]
    session.absorb(ack((4, 4, 1, 0, 1)))
    run.resume()
    assert [o.seq for o in settled("many", run)] == [1, 2, 3, 4] and session.awaited == {}


def test_a_flush_without_acks_sends_at_once_too(session: Session) -> None:
    read: list[int] = []
    items = [("t", b"a"), FLUSH, ("t", b"b"), ("t", b"c")]
    run = Run(publish_many(session, flushed(items, read), False, 100, 100, timeout=5.0))
    assert len(read) == 2 and sending(run) == [(0, "t", [b"a"])]
    assert sending(run) == [(0, "t", [b"b", b"c"])]
    assert sent(run.step)[3] == "info"  # the request that confirms they were read


def test_a_frames_refs_are_taken_when_it_leaves(session: Session) -> None:
    """Refs are reserved as a frame is sent: they are consecutive within it, whatever
    other operations of the session took meanwhile."""
    run = Run(publish_many(session, counted(6, []), True, window=3, batch=3, timeout=5.0))
    assert refs(run.sends()) == [[1, 2, 3]] and isinstance(run.step, Wait)
    request = Run(session.request("echo", {}, 5.0))
    assert unpack(request.step.frame)[2] == 4
    session.absorb(ack((1, 1, 1, 0, 3)))
    run.resume()
    assert refs(run.sends()) == [[5, 6, 7]]
    session.absorb(ack((5, 4, 1, 0, 3)))
    run.resume()
    assert run.done and [o.seq for o in run.emitted] == [1, 2, 3, 4, 5, 6]


def test_a_nack_of_n_refs_fails_exactly_those_publishes(session: Session) -> None:
    run = Run(publish_many(session, counted(6, []), True, window=10, batch=6, timeout=5.0))
    assert shapes(run.sends()) == [[(1, "t", [b"m%d" % i for i in range(6)])]]
    session.absorb(nack((2, "too_large", "big", 3)))  # refs 2, 3 and 4
    session.absorb(ack((1, 10, 1, 0, 1), (5, 11, 1, 0, 2)))
    run.resume()
    assert run.done and codes(run.emitted) == ["too_large"] * 3 + [None] * 3
    assert all(o.message == "big" for o in run.emitted[:3])
    assert [o.seq for o in run.emitted[3:]] == [10, 11, 12]
    assert session.awaited == {}


def test_a_nack_of_n_refs_fails_exactly_those_of_a_stream(session: Session) -> None:
    run = stream(session, counted(6, []), window=10, batch=3)
    assert refs(run.sends()) == [[1, 2, 3], [4, 5, 6]]
    session.absorb(nack((2, "no_route", "x", 4)))  # refs 2-5, across both frames
    session.absorb(ack((1, 1, 1, 0, 1), (6, 2, 1, 0, 1)))
    run.resume()
    assert run.done and (run.result.acked, codes(run.result.failures)) == (2, ["no_route"] * 4)


def test_a_long_run_of_one_topic_is_split_at_max_batch(session: Session) -> None:
    count = MAX_BATCH + 10
    run = stream(session, counted(count, []), window=count, batch=count)
    frames = run.sends()
    assert [(r, t, len(ps)) for f in shapes(frames) for r, t, ps in f] == [
        (1, "t", MAX_BATCH),
        (1 + MAX_BATCH, "t", 10),
    ]
    session.absorb(ack((1, 1, 1, 0, count)))
    run.resume()
    assert run.done and run.result.acked == count


def test_a_payload_too_large_for_the_node_is_refused_alone(session: Session) -> None:
    big = b"x" * (MAX_BATCH_BYTES + 1)  # over any node's max_payload (MAX_PAYLOAD_LIMIT)
    run = Run(publish_many(session, iter([("t", b"a"), ("t", big)]), True, 10, 10, 5.0))
    decoder = PublishDecoder(MAX_PAYLOAD_LIMIT)  # what a node makes of the frame
    entries, rejects = decoder.decode(decode_api(run.step.frame)[1])
    assert [(r.ref, r.code, r.n) for r in rejects] == [(2, "too_large", 1)]
    assert [entry[:3] for entry in entries] == [[1, "t", 1]]
