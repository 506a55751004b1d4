"""What membership tells the operator (``LogEvent`` actions, README "Logs").

* an accusation of this node that makes it refute is logged once, with the new version;
* a peer declared dead is redialled with hellos naming it (``dropped``), until it is
  back; the node named, holding the sender alive, logs ``readmitted`` (a crossing
  hello at start, a new life or another id do not);
* a suspicion started by a peer's word, and its refutation, are logged with who;
* every ``PeerDown`` says why, never with an empty reason.
"""

from __future__ import annotations

import pytest

from tests.core.helpers import hello, verdict
from tests.core.test_membership import admitted, hellos_to, make, of
from zdps.core.log_events import LogEvent
from zdps.core.membership_actions import PeerDown, Send
from zdps.wire import ALIVE, DEAD, SUSPECT
from zdps.wire.gossip import Hello

pytestmark = pytest.mark.timeout(30)


def events(actions: list) -> list[str]:
    return [str(a) for a in of(actions, LogEvent)]


def test_an_accusation_is_logged_once_with_the_refuting_version() -> None:
    m = make()
    admitted(m, "b")
    assert events(m.handle("b", 1, verdict(SUSPECT, "a", 1, 0), 1.0)) == [
        "accused by=b verdict=suspect refuted=1"
    ]
    assert events(m.handle("b", 1, verdict(SUSPECT, "a", 1, 0), 1.2)) == []  # already refuted
    assert events(m.handle("b", 1, verdict(DEAD, "a", 1, 1), 1.4)) == [
        "accused by=b verdict=dead refuted=2"
    ]
    assert events(m.handle("b", 1, verdict(SUSPECT, "a", 0, 5), 1.5)) == []  # an old life


def test_a_hello_naming_this_node_dropped_by_a_peer_held_alive_is_a_readmission() -> None:
    m = make()
    admitted(m, "b")
    assert events(m.handle("b", 1, hello("b", reply=True), 0.5)) == []  # start-up crossing
    dropped = Hello("inproc://b", {}, "inproc://a", True, dropped="a")
    assert events(m.handle("b", 1, dropped, 2.5)) == ["readmitted by=b"]
    fresh = make()  # a new life, or a node that had dropped b too, knows it already
    assert events(fresh.handle("b", 1, dropped, 0.1)) == []
    other = Hello("inproc://b", {}, "inproc://a", True, dropped="z")
    assert events(m.handle("b", 1, other, 3.0)) == []


def test_a_peer_declared_dead_is_redialled_with_hellos_naming_it() -> None:
    m = make()
    admitted(m, "b")
    m.handle("c", 1, hello("c"), 0.0)
    m.handle("c", 1, verdict(DEAD, "b", 1, 0), 0.5)
    redials = [a for t in range(6, 30) for a in hellos_to(m.tick(t / 10), "inproc://b")]
    assert redials and all(a.message.dropped == "b" for a in redials)
    admitted(m, "b", now=3.0)  # back: its hellos no longer say it was dropped
    later = [a for t in range(31, 35) for a in m.tick(t / 10)]
    assert hellos_to(later, "inproc://b") == []
    assert all(getattr(a.message, "dropped", None) is None for a in of(later, Send))


def test_suspicions_by_others_and_their_refutation_are_logged() -> None:
    m = make()
    admitted(m, "b")
    admitted(m, "c")
    assert events(m.handle("b", 1, verdict(SUSPECT, "c", 1, 0), 1.0)) == ["suspect node=c by=b"]
    assert events(m.handle("c", 1, verdict(ALIVE, "c", 1, 1), 1.1)) == [
        "suspicion_refuted node=c version=1"
    ]


@pytest.mark.parametrize(
    ("silence", "why"), [(1.0, "silent for 1 s"), (60.0, "suspected, not refuted in time")]
)
def test_a_death_says_which_timer_decided_it(silence: float, why: str) -> None:
    """The silence backstop, or the suspicion's timeout, whichever runs out first; the
    peer may well be suspected when its silence decides."""
    m = make()
    m.detector.config.silence_timeout = silence
    admitted(m, "b")
    actions = [a for t in range(1, 100) for a in m.tick(t / 10)]  # b never answers
    assert of(actions, PeerDown) == [PeerDown("b", "dead", why)]


def test_our_own_suspicion_and_every_death_say_who_and_why() -> None:
    m = make()
    admitted(m, "b")
    admitted(m, "c")
    actions = [a for t in range(1, 60) for a in m.tick(t / 10)]  # b and c never answer
    assert "suspect node=b by=a" in events(actions) and "suspect node=c by=a" in events(actions)
    downs = of(actions, PeerDown)
    assert {d.node for d in downs} == {"b", "c"}
    assert all(d.reason == "dead" for d in downs)
    assert {d.why for d in downs} <= {"silent for 2 s", "suspected, not refuted in time"}
    m = make()
    admitted(m, "b")
    admitted(m, "c")
    (down,) = of(m.handle("c", 1, verdict(DEAD, "b", 1, 0), 0.5), PeerDown)
    assert down == PeerDown("b", "dead", "declared dead by c")
