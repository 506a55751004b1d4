"""Probes and accusations from a node not alive here (zdps/core/membership.py): after a
heal, a node that declared this one dead probes and accuses it before this one has
readmitted it. Unanswered, the probe raises a suspicion and the accusation times out
into a death; so both are answered when the sender's endpoint is known here."""

from __future__ import annotations

import pytest

from tests.core.helpers import verdict
from tests.core.test_membership import admitted, make, of
from zdps.core.membership_actions import Send
from zdps.wire import DEAD, SUSPECT
from zdps.wire.probes import Alive, Probe, ProbeAck

pytestmark = pytest.mark.timeout(30)


def declared_dead(node: str = "b"):  # type: ignore[no-untyped-def]
    """A membership of "a" with peers b and c, where c's verdict removed ``node``."""
    m = make()
    admitted(m, "b")
    admitted(m, "c")
    m.handle("c", 1, verdict(DEAD, node, 1, 0), 1.0)
    assert not m.is_alive(node, 1)
    return m


def test_a_probe_from_a_node_declared_dead_is_acknowledged_at_its_endpoint() -> None:
    m = declared_dead()
    assert m.handle("b", 1, Probe(7), 1.5) == [Send("inproc://b", ProbeAck(7), probe=True)]


def test_an_accusation_from_a_node_declared_dead_is_refuted_to_all_and_to_it() -> None:
    m = declared_dead()
    version = m.detector.version
    actions = m.handle("b", 1, verdict(SUSPECT, "a", 1, version), 1.5)
    assert m.detector.version == version + 1
    alive = Alive("a", 1, version + 1)
    sends = of(actions, Send)
    assert Send("inproc://b", alive, probe=True) in sends  # the accuser
    assert Send("inproc://c", alive, probe=True) in sends  # every alive peer


def test_a_stale_dead_verdict_from_a_node_declared_dead_is_refuted_too() -> None:
    m = declared_dead()
    m.handle("b", 1, verdict(DEAD, "a", 1, 0), 1.5)
    assert m.detector.version == 1
    actions = m.handle("b", 1, verdict(SUSPECT, "a", 1, 0), 1.6)  # older than our version
    assert m.detector.version == 1  # needs no new one: the news is enough
    assert Send("inproc://b", Alive("a", 1, 1), probe=True) in of(actions, Send)


def test_a_stranger_whose_endpoint_is_unknown_gets_nothing() -> None:
    m = make()
    admitted(m, "c")
    assert m.handle("x", 1, Probe(7), 1.0) == []
    assert m.handle("x", 1, verdict(SUSPECT, "a"), 1.0) == []
    assert m.detector.version == 0


def test_verdicts_about_others_from_a_node_declared_dead_are_still_ignored() -> None:
    m = declared_dead()
    assert m.handle("b", 1, verdict(SUSPECT, "c"), 1.5) == []
    assert not m.detector.is_suspect("c")
