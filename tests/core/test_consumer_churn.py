"""One durable consumer on three simulated nodes, under member churn: hypothesis over
interleavings of members joining (``consume``) and leaving (their connection gone),
publishes, acks, naks and terms of what each member holds, and time passing.

Each example ends with a member that acks everything until the consumer is drained, and
the trace is checked (tests/core/consumer_world.py ``check``):

* a message is pending at one member at a time: it goes again only once ``ack_wait``
  went by since its last delivery, or after the member holding it nakked it (a late
  nak, of a delivery that went again since, changes nothing), and then flagged with a
  larger delivery count (never above ``max_deliver``);
* nothing is pushed to a member that left, and nothing pushed after the message ended;
* never more than ``max_pending`` messages out without a verdict;
* every published message ends exactly once: acked, termed or dead-lettered (after its
  last delivery was due); the consumer's counts agree, so an ack of a stale delivery is
  not counted twice; nothing is lost and its cursor is at the newest message.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.core.consumer_world import (
    DEAD,
    NODES,
    Broken,
    Dead,
    Event,
    Gone,
    Push,
    Quiet,
    Said,
    World,
    check,
    cluster,
    flag_check,
    topic_owned_by,
)
from zdps.wire.consumers import ACK, NAK, TERM

pytestmark = pytest.mark.timeout(120)

KINDS = ("consume", "leave", "publish", "ack", "nak", "term", "wait")
WEIGHTS = (2, 1, 3, 3, 2, 1, 3)  # how often each kind comes
WAITS = (0.05, 0.3, 1.0, 2.0, 3.0)  # seconds; ack_wait is 1 or 2.5
OPS = st.lists(
    st.tuples(
        st.sampled_from([k for k, w in zip(KINDS, WEIGHTS, strict=True) for _ in range(w)]),
        st.integers(0, 30),  # which node, or member
        st.integers(0, 30),  # which of its messages
        st.booleans(),  # race: leave what it sent in flight
        st.sampled_from(WAITS),
    ),
    min_size=6,
    max_size=40,
)
Op = tuple[str, int, int, bool, float]


def op(kind: str, which: int = 0, pick: int = 0, race: bool = False, wait: float = 0.05) -> Op:
    return kind, which, pick, race, wait


def world(owner: int, dead_at: int) -> World:
    net = cluster()
    net.record = False
    return World(net, topic_owned_by(NODES[owner]), NODES[dead_at])


def run(world: World, ops: list[Op]) -> None:
    """Carry out ``ops``: ``which`` picks a node or a member, ``pick`` one of the
    member's messages; ``race`` leaves what the op sent in flight for the next op."""
    for kind, which, pick, race, wait in ops:
        members = sorted(world.members)
        member = members[which % len(members)] if members else None
        node = NODES[which % len(NODES)]
        if kind == "consume":
            world.consume(node, quiet=not race)
        elif kind == "leave" and member is not None:
            world.leave(member, quiet=not race)
        elif kind == "publish":
            for _ in range(1 + which % 3):
                world.publish(node, quiet=not race)
        elif kind in ("ack", "nak", "term") and member is not None and world.held[member]:
            held = world.held[member]
            payload = held[pick % len(held)]  # perhaps one that went to another since
            world.say(member, payload, {"ack": ACK, "nak": NAK, "term": TERM}[kind])
        elif kind == "wait":
            world.advance(wait)
    world.collect()


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    ops=OPS,
    owner=st.integers(0, 2),
    created_at=st.integers(0, 2),
    dead_at=st.integers(0, 2),
    ack_wait=st.sampled_from([1.0, 2.5]),
    max_deliver=st.integers(1, 4),
    max_pending=st.integers(1, 5),
)
# A member acks late, after its message went to another: counted once.
@example(
    ops=[op("consume", 0), op("consume", 1), op("publish", 0), op("wait", wait=1.0),
         op("ack", 0), op("ack", 1)],
    owner=0, created_at=1, dead_at=2, ack_wait=1.0, max_deliver=4, max_pending=1,
)  # fmt: skip
# A member leaves holding messages, one races its own departure; they go to the other.
@example(
    ops=[op("consume", 1), op("consume", 2), op("publish", 2), op("leave", 0, race=True),
         op("publish", 1), op("wait", wait=3.0)],
    owner=2, created_at=0, dead_at=1, ack_wait=2.5, max_deliver=3, max_pending=5,
)  # fmt: skip
# Nobody acks: each message goes max_deliver times, then is dead-lettered.
@example(
    ops=[op("consume", 0), op("publish", 1), op("nak", 0)] + [op("wait", wait=3.0)] * 3,
    owner=1, created_at=2, dead_at=0, ack_wait=1.0, max_deliver=2, max_pending=2,
)  # fmt: skip
def test_member_churn_keeps_one_holder_and_ends_each_message_once(
    ops: list[Op],
    owner: int,
    created_at: int,
    dead_at: int,
    ack_wait: float,
    max_deliver: int,
    max_pending: int,
) -> None:
    """The rules hold whatever members do and whenever; each example is drained at the
    end, so that every message's fate shows."""
    w = world(owner, dead_at)
    settings_ = {"ack_wait": ack_wait, "max_deliver": max_deliver, "max_pending": max_pending}
    w.create(NODES[created_at], start="all", **settings_)
    run(w, ops)
    if not w.members:
        w.consume(NODES[owner - 1])
    info = w.drain(rounds=4 * max_deliver + 8, wait=ack_wait)
    summary = check(w.trace, ack_wait, max_deliver, max_pending)
    assert {p for p, fate in summary.fates.items() if fate.end is not None} == set(w.published)
    counts = info["counts"]
    assert counts.get("delivered", 0) == len(w.published)
    assert counts.get("acked", 0) == len(summary.ended(ACK))
    assert counts.get("termed", 0) == len(summary.ended(TERM))
    assert counts.get("dead_lettered", 0) == len(summary.ended(DEAD))
    if summary.skipped:  # the owner counted deliveries nobody got: it saw naks as late
        assert counts.get("nakked", 0) <= summary.nakked
    else:
        assert counts.get("nakked", 0) == summary.nakked
    flagged = sum(len(pushes) - 1 for pushes in flag_check(w.trace).values())
    assert counts.get("redelivered", 0) >= flagged
    assert info["lost"] == 0


def test_a_late_nak_does_not_send_the_message_again_while_another_member_holds_it() -> None:
    """Found by the churn property (fixed since: a verdict names the delivery it
    answers): m1's delivery expired and the message went to m2; m1's nak then came, and
    the owner sent the message again at once, while m2 still held it."""
    w = world(owner=0, dead_at=0)
    w.create("a", start="all", ack_wait=1.0, max_pending=1)
    first, second = w.consume("b"), w.consume("c")
    job = w.publish("a")
    w.advance(1.0)  # ack_wait went by: the message goes to the other member
    holders = [p.member for p in w.trace if isinstance(p, Push)]
    assert sorted(holders) == sorted([first, second]), w.trace
    w.say(holders[0], job, NAK)  # the first holder's late nak
    w.advance(0.5)
    assert len([p for p in w.trace if isinstance(p, Push)]) == 2
    assert check(w.trace, ack_wait=1.0, max_deliver=5, max_pending=1).nakked == 0


# ---------------------------------------------------------------- the checker itself


def push(time: float, member: bytes, deliveries: int = 1, payload: bytes = b"x") -> Push:
    return Push(time, "a", member, payload, (1, 1 if payload == b"x" else 2), deliveries)


BAD_TRACES: dict[str, list[Event]] = {
    "pushed to a member that left": [Gone(0.0, b"m1"), push(0.0, b"m1")],
    "while b'm1' held it": [push(0.0, b"m1"), push(0.5, b"m2", 2)],
    "while b'm2' held it": [
        push(0.0, b"m1"),
        push(1.0, b"m2", 2),
        Said(1.1, b"m1", b"x", NAK),  # a late nak: m2 holds it
        push(1.1, b"m1", 3),
    ],
    "not flagged above 1": [push(0.0, b"m1"), push(1.0, b"m2", 1)],
    "deliveries not within": [push(0.0, b"m1"), push(1.0, b"m2", 4)],
    "after it ended": [push(0.0, b"m1"), Said(0.1, b"m1", b"x", ACK), push(2.0, b"m1", 2)],
    "but it ended already": [push(0.0, b"m1"), Said(0.1, b"m2", b"x", TERM), Dead(2.0, b"x")],
    "before its last delivery was due": [push(0.0, b"m1"), Dead(0.5, b"x")],
    "over 1": [push(0.0, b"m1"), push(0.0, b"m1", payload=b"y"), Quiet(0.0)],
    "nobody got": [Said(0.0, b"m1", b"x", ACK)],
}


@pytest.mark.parametrize("why", sorted(BAD_TRACES))
def test_the_checker_catches_each_broken_rule(why: str) -> None:
    with pytest.raises(Broken, match=why.replace("(", r"\(")):
        check(BAD_TRACES[why], ack_wait=1.0, max_deliver=3, max_pending=1)


def test_the_checker_passes_a_good_trace_and_flag_check_catches_an_unflagged_one() -> None:
    good: list[Event] = [push(0.0, b"m1"), Said(0.2, b"m1", b"x", NAK), push(0.2, b"m2", 2)]
    good += [Gone(0.5, b"m2"), Quiet(0.5), push(1.2, b"m1", 3, b"y"), Dead(1.2, b"x")]
    summary = check(good, ack_wait=1.0, max_deliver=3, max_pending=2)
    assert summary.ended(DEAD) == {b"x"} and summary.nakked == 1
    assert len(flag_check(good)[b"x"]) == 2
    with pytest.raises(Broken, match="not flagged"):
        flag_check([push(0.0, b"m1"), push(5.0, b"m2", 1)])
    with pytest.raises(Broken, match="member that left"):
        flag_check([Gone(0.0, b"m1"), push(1.0, b"m1")])
