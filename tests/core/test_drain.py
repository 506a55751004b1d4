"""The drain's steps (zdps/core/drain.py): wait for pending acks, hand every held topic
to its placement without this node, wait for each target's barrier_ok or its end."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from zdps.core.barrier import Barriers
from zdps.core.drain import Drain
from zdps.core.history import HistoryStore
from zdps.core.outbox import Outbox
from zdps.core.ring import HashRing
from zdps.wire.api import API_REPLY
from zdps.wire.batches import pack_batch
from zdps.wire.data import Retention
from zdps.wire.requests import Barrier, BarrierOk

pytestmark = pytest.mark.timeout(30)


@dataclass
class Handoff:
    """Stands in for HistoryHandoff: records what went to whom."""

    sent: list[tuple[str, str]] = field(default_factory=list)

    def hand_over(self, node: str, topic: str, now: float, out: Outbox) -> int:
        self.sent.append((node, topic))
        return 1


def drain_of(pending: list[int]) -> tuple[Drain, Handoff, Barriers, HistoryStore]:
    ring = HashRing(["a", "b", "c"])
    history = HistoryStore(Retention(100, 60.0))
    for i in range(30):
        history.store(f"t{i}", 1, 1, 1, pack_batch([b"x"]), 0.0)
    handoff = Handoff()
    barriers = Barriers("a", ring, lambda: ["b", "c"], lambda node: f"tcp://127.0.0.1:{node}")
    drain = Drain("a", ring, 2, history, handoff, barriers, lambda: pending[0])  # type: ignore[arg-type]
    return drain, handoff, barriers, history


def test_it_waits_for_pending_acks_then_hands_each_topic_to_its_placement_without_it() -> None:
    pending = [3]
    drain, handoff, barriers, history = drain_of(pending)
    out = Outbox()
    drain.start(0.0, 10.0, out)
    assert not drain.done(1.0, out) and handoff.sent == []
    pending[0] = 0
    assert not drain.done(2.0, out)
    rest = HashRing(["b", "c"])
    expected = {(node, topic) for topic in history.held() for node in rest.successors(topic, 2)}
    assert set(handoff.sent) == expected and len(handoff.sent) == 60
    asked = [m for ms in out.peers.values() for m in ms if isinstance(m, Barrier)]
    assert len(asked) == 2
    barriers.on_barrier_ok("b", BarrierOk(asked[0].barrier_id), 2.1, out)
    assert not drain.done(2.2, out)
    barriers.on_barrier_ok("c", BarrierOk(asked[0].barrier_id), 2.3, out)
    assert drain.done(2.4, out)
    assert drain.report["unconfirmed"] == [] and drain.report["topics"] == 30


def test_a_target_that_goes_down_is_not_waited_for_and_the_deadline_ends_it() -> None:
    drain, _, barriers, _ = drain_of([0])
    out = Outbox()
    drain.start(0.0, 5.0, out)
    assert not drain.done(0.1, out)
    barriers.peer_down("b", out)
    assert not drain.done(0.2, out)  # c has not answered
    assert drain.done(5.0, out)
    assert drain.report["unconfirmed"] == ["c"]


def test_a_second_start_only_brings_the_deadline_closer_and_requesters_get_the_report() -> None:
    drain, _, _, _ = drain_of([1])
    out = Outbox()
    drain.start(0.0, 30.0, out, (b"client", 7))
    drain.start(1.0, 2.0, out)
    drain.start(1.5, 60.0, out)
    assert drain.deadline == 3.0
    assert not drain.done(2.9, out)
    assert drain.done(3.0, out)
    assert [frame[:3] for frame in out.clients[b"client"]] == [[API_REPLY, 7, True]]
