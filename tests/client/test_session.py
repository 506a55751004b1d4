"""The client session without sockets: answers filed by ref, requests, subscribe, watch."""

from __future__ import annotations

import pytest

from tests.client.scripted import NODE, Clock, Run, ack, event, nack, rep, sent
from zdps.client.ledger import StreamLedger
from zdps.client.protocol import PublishError, PublishResult, RequestError
from zdps.client.recovery import FETCH_RETRY, Pager, fetching
from zdps.client.session import Session
from zdps.client.steps import Dial, Filter, Pending, Sleep, Wait
from zdps.client.subscription import SubscribePlan, notices
from zdps.topics import SYNC_PREFIX
from zdps.wire import PROTOCOL_VERSION, pack, unpack
from zdps.wire.batches import pack_batch
from zdps.wire.limits import HISTORY_PAGE

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def session(clock: Clock) -> Session:
    return Session(NODE, clock)


# ---------------------------------------------------------------------- answers


def test_an_ack_run_is_one_result_per_ref(session: Session) -> None:
    pending = Pending()
    for ref in (10, 11, 12):
        session.awaited[ref] = pending
    assert session.absorb(ack((10, 100, 2, 3, 3))) == [pending] * 3
    assert pending.outcomes == {10 + i: PublishResult(100 + i, 2, 3) for i in range(3)}
    assert session.awaited == {}


def test_a_stream_takes_its_runs_and_passes_on_the_rest(session: Session) -> None:
    ledger, stream, other = StreamLedger(), Pending(), Pending()
    ledger.add(5, 3, 1.0)  # refs 5..7
    session.streams.append((ledger, stream))
    session.awaited.update({3: other, 4: other, 8: other})
    touched = session.absorb(ack((3, 100, 1, 1, 4), (8, 7, 1, 1, 1)))  # refs 3..6, and 8
    assert set(touched) == {stream, other}
    assert other.outcomes == {
        3: PublishResult(100, 1, 1),
        4: PublishResult(101, 1, 1),
        8: PublishResult(7, 1, 1),
    }
    assert (ledger.acked, ledger.unsettled) == (2, 1)
    session.awaited[9] = other
    session.absorb(nack((7, "no_route", "x", 1), (9, "too_large", "y", 1)))
    assert ledger.failures[0].code == "no_route" and ledger.unsettled == 0
    assert isinstance(other.outcomes[9], PublishError) and other.outcomes[9].code == "too_large"


def test_a_nack_run_fails_exactly_its_n_refs(session: Session) -> None:
    pending = Pending()
    for ref in (10, 11, 12, 13):
        session.awaited[ref] = pending
    assert session.absorb(nack((10, "too_large", "big", 3))) == [pending] * 3
    assert {ref: (o.code, o.message) for ref, o in pending.outcomes.items()} == {
        ref: ("too_large", "big") for ref in (10, 11, 12)
    }
    assert session.awaited == {13: pending}


def test_a_nack_run_shared_by_a_stream_and_other_refs(session: Session) -> None:
    ledger, stream, other = StreamLedger(), Pending(), Pending()
    ledger.add(5, 3, 1.0)  # refs 5..7
    session.streams.append((ledger, stream))
    session.awaited.update({4: other, 8: other})
    touched = session.absorb(nack((4, "no_route", "x", 3)))  # refs 4, 5 and 6
    assert set(touched) == {stream, other}
    assert list(other.outcomes) == [4] and other.outcomes[4].code == "no_route"
    assert session.awaited == {8: other}
    assert (ledger.acked, len(ledger.failures), ledger.unsettled) == (0, 2, 1)


@pytest.mark.parametrize(
    "frame",
    [
        b"\xc1",
        pack([PROTOCOL_VERSION, "rep", 5]),
        pack([PROTOCOL_VERSION, "ack", [[1, 2]]]),
        pack([PROTOCOL_VERSION, "nack", [[1, "too_large", "no"]]]),  # without its n
        pack([PROTOCOL_VERSION, "nack", [[1, "too_large", "no", 0]]]),
        pack([PROTOCOL_VERSION, "rep", 1, False, {}]),
        pack([PROTOCOL_VERSION - 1, "rep", 1, True, {}]),  # another protocol version
    ],
)
def test_frames_of_the_wrong_shape_are_skipped_and_counted(session: Session, frame: bytes) -> None:
    pending = Pending()
    session.awaited[1] = pending
    assert session.absorb(frame) == []
    assert session.bad_frames == 1 and pending.outcomes == {} and session.awaited == {1: pending}


def test_answers_nobody_awaits_are_dropped(session: Session, clock: Clock) -> None:
    clock.now = 150.0
    assert session.absorb(rep(7, True)) == []
    assert session.absorb(event(7, {"nodes": {}})) == []
    assert session.absorb(pack([PROTOCOL_VERSION, "future-kind", 1])) == []  # newer nodes (§11)
    assert session.bad_frames == 0 and session.last_rx == 150.0


# ---------------------------------------------------------------------- requests


def test_a_request_is_sent_then_awaited_until_its_reply(session: Session) -> None:
    run = Run(session.request("echo", {"n": 1}, 5.0))
    assert sent(run.step) == [PROTOCOL_VERSION, "req", 1, "echo", {"n": 1}]
    assert run.step.until == 105.0
    step = run.resume(True)
    assert isinstance(step, Wait) and step.until == 105.0
    assert session.absorb(rep(1, {"ok": 1})) == [step.pending]
    run.resume()
    assert run.result == {"ok": 1} and session.awaited == {}


def test_a_failed_reply_raises_its_code(session: Session) -> None:
    run = Run(session.request("members", {}, 5.0))
    run.resume(True)
    session.absorb(rep(1, {"code": "malformed", "message": "no topic"}, ok=False))
    with pytest.raises(RequestError) as raised:
        run.resume()
    assert raised.value.code == "malformed" and session.awaited == {}


def test_a_request_times_out_and_its_late_reply_is_dropped(session: Session, clock: Clock) -> None:
    run = Run(session.request("slow", {}, 2.0))
    run.resume(True)
    clock.now = 101.0
    assert isinstance(run.resume(), Wait)  # woken early: still waiting
    clock.now = 102.0
    with pytest.raises(RequestError) as raised:
        run.resume()
    assert raised.value.code == "timeout" and "no answer" in raised.value.message
    assert session.awaited == {}
    assert session.absorb(rep(1, True)) == []


def test_a_request_that_cannot_be_sent_times_out(session: Session) -> None:
    run = Run(session.request("status", {}, 2.0))
    with pytest.raises(RequestError) as raised:
        run.resume(False)
    assert raised.value.code == "timeout" and "not reading" in raised.value.message
    assert session.awaited == {}


def test_refs_are_never_reused(session: Session) -> None:
    first = Run(session.request("a", {}, 1.0))
    second = Run(session.request("b", {}, 1.0))
    assert [sent(first.step)[2], sent(second.step)[2]] == [1, 2]
    assert session.reserve(10) == 3 and session.next_ref == 13


def test_a_recovery_is_served_with_requests_that_may_fail(session: Session) -> None:
    run = Run(session.serve(fetching(Pager.make("t", since=0)), 5.0))
    history = {"topic": "t", "since": 0, "limit": HISTORY_PAGE}
    assert sent(run.step) == [PROTOCOL_VERSION, "req", 1, "history", history]
    run.resume(True)
    session.absorb(rep(1, {"code": "owner_lost", "message": "x"}, ok=False))
    assert run.resume() == Sleep(FETCH_RETRY)  # the recovery's own step, passed on
    run.resume()
    assert sent(run.step)[2:] == [2, "history", history]
    run.resume(True)
    session.absorb(rep(2, {"entries": [[1, 1, b"x"]], "more": False}))
    run.resume()
    assert run.result == [[1, 1, b"x"]]


# ---------------------------------------------------------------------- subscribe, watch


def test_subscribe_connects_subscribes_proves_then_replays(session: Session) -> None:
    plan = SubscribePlan.make(["a", "b", "a"], prefix=False, since=3)
    assert plan.groups == [b"a\x00", b"b\x00"] and plan.replay == ("a", "b")
    token = SYNC_PREFIX + plan.token.encode()
    run = Run(session.subscribe(plan, recover=False, timeout=5.0))
    assert sent(run.step) == [PROTOCOL_VERSION, "req", 1, "info", {}]
    run.resume(True)
    session.absorb(rep(1, {"endpoints": {"pub": "tcp://127.0.0.1:7712"}}))
    assert run.resume() == Dial("tcp://127.0.0.1:7712")  # connected before subscribing
    # The groups, each with its loss notices (since implies recovery), then the token.
    assert run.resume() == Filter(add=(*notices([b"a\x00", b"b\x00"]), token))
    assert sent(run.resume()) == [
        PROTOCOL_VERSION,
        "req",
        2,
        "ready",
        {"token": plan.token, "groups": [b"a\x00", b"b\x00"]},
    ]
    run.resume(True)
    session.absorb(rep(2, True))
    assert run.resume() == Filter(drop=(token,))
    run.resume()
    for ref, topic in [(3, "a"), (4, "b")]:
        assert sent(run.step)[2:] == [
            ref,
            "history",
            {"topic": topic, "since": 3, "limit": HISTORY_PAGE},
        ]
        run.resume(True)
        session.absorb(rep(ref, {"entries": [[1, 3, topic.encode()]], "more": False}))
        run.resume()
    inbox = run.result
    assert [(d.topic, d.seq) for d in inbox.ready] == [("a", 3), ("b", 3)]
    assert inbox.recovery is not None  # since implies recover


def test_subscribe_asks_info_once_and_dials_the_api_host(clock: Clock) -> None:
    session = Session("tcp://10.1.2.3:7711", clock)
    for attempt in range(2):
        run = Run(session.subscribe(SubscribePlan.make(["t"], False), True, 5.0))
        if attempt == 0:
            run.resume(True)
            session.absorb(rep(1, {"endpoints": {"pub": "tcp://127.0.0.1:7712"}}))
            run.resume()
        assert run.step == Dial("tcp://10.1.2.3:7712")


def test_a_watch_emits_members_then_every_event(session: Session) -> None:
    run = Run(session.watch("t", 5.0))
    assert sent(run.step) == [PROTOCOL_VERSION, "req", 1, "watch", {"topic": "t"}]
    run.resume(True)
    session.absorb(event(1, {"n": 0}))  # may come before the reply: kept for later
    session.absorb(rep(1, {"nodes": {}}))
    step = run.resume()
    assert run.emitted == [{"nodes": {}}, {"n": 0}]
    assert isinstance(step, Wait) and step.until is None
    session.absorb(event(1, {"n": 1}))
    session.absorb(event(1, {"n": 2}))
    run.resume()
    assert run.emitted[2:] == [{"n": 1}, {"n": 2}]
    run.op.close()
    assert [unpack(f)[2:] for f in session.take_outbox()] == [[2, "unwatch", {"ref": 1}]]
    assert session.absorb(event(1, {"n": 3})) == []  # the watch has ended


def test_closing_the_session_ends_its_watches_once(session: Session) -> None:
    run = Run(session.watch("t", 5.0))
    run.resume(True)
    session.absorb(rep(1, {"nodes": {}}))
    run.resume()
    assert [unpack(f)[3:] for f in session.close()] == [["unwatch", {"ref": 1}]]
    run.op.close()
    assert session.take_outbox() == []


@pytest.mark.parametrize(("level", "tail"), [(1, []), (2, [2])])
def test_a_single_publish_is_a_batch_of_one(session: Session, level: int, tail: list) -> None:
    run = Run(session.publish("t", "x", level, 5.0))
    assert sent(run.step) == [PROTOCOL_VERSION, "pub", [[1, "t", 1, pack_batch([b"x"]), *tail]]]
    run.resume(True)
    session.absorb(ack((1, 7, 1, 2, 1)))
    run.resume()
    assert run.result == PublishResult(7, 1, 2) and session.awaited == {}


def test_a_publish_without_ack_has_ref_0(session: Session) -> None:
    run = Run(session.publish("t", b"x", 0, 5.0))
    assert sent(run.step) == [PROTOCOL_VERSION, "pub", [[0, "t", 1, pack_batch([b"x"])]]]
    run.resume(True)
    assert run.done and run.result is None and session.unconfirmed == 1
    assert session.next_ref == 1  # no ref used
