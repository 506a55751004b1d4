"""Windowed publishing without sockets: windows, batches, outcomes, early stops."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.client.scripted import NODE, Clock, Run, ack, event, nack, rep
from zdps.client.protocol import PublishResult
from zdps.client.publishing import publish_many, publish_stream
from zdps.client.session import Session
from zdps.client.steps import Send, Wait

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
    """The refs of each publish frame sent."""
    return [[entry[0] for entry in frame[2]] for frame in frames]


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
    session.absorb(nack((7, "too_large", "no")))
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
    assert [entry[3] for entry in run.sends()[0][2]] == [2, 2]


@pytest.mark.parametrize(("window", "batch"), [(0, 1), (1, 0)])
def test_windows_and_batches_hold_at_least_one(session: Session, window: int, batch: int) -> None:
    with pytest.raises(ValueError):
        next(publish_stream(session, iter([]), window, batch, "owner", 5.0))
    with pytest.raises(ValueError):
        next(publish_many(session, iter([]), True, window, batch, 5.0))


def test_publish_stream_counts_acks_so_it_needs_them(session: Session) -> None:
    with pytest.raises(ValueError):
        next(publish_stream(session, iter([]), 10, 10, "none", 5.0))
