"""The SWIM detector (zdps/core/swim.py), alone: ``Swim`` driven with explicit times.

The detector inside simulated clusters: test_swim_cluster.py. Rules under test:

* one peer is probed per probe interval, round-robin over a list reshuffled each round;
* an unanswered probe asks up to ``indirect_probes`` helpers, whose relayed ack saves
  the target; helpers nack what they could not reach;
* no ack at all: the target is suspected, everyone (the target included) is told, and
  the target refutes by outranking the accusation's (incarnation, version);
* an unrefuted suspicion ends in a dead verdict sent to every peer; the timeout falls
  from its maximum to its minimum as independent accusers confirm it;
* verdicts about another incarnation never touch the current one;
* local health stretches probe timeouts; a stalled tick judges nobody.
"""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.helpers import verdict
from zdps.core.swim import EXPECTED_CONFIRMATIONS, HEALTH_MAX, Dead, Swim, SwimConfig, Tell
from zdps.wire import (
    ALIVE,
    DEAD,
    PROBE,
    PROBE_NACK,
    PROBE_REQ,
    SUSPECT,
    ProtocolError,
)
from zdps.wire.messages import decode_message
from zdps.wire.probes import Probe, ProbeAck, ProbeNack, ProbeReq

pytestmark = pytest.mark.timeout(60)

CFG = SwimConfig(silence_timeout=1e9)  # the silence backstop has its own tests
INTERVAL, TIMEOUT = CFG.probe_interval, CFG.probe_timeout
STEP = 0.01  # ticks this close together are never a stall


def make(node: str = "a", peers: str = "bc", seed: int = 0, config: SwimConfig = CFG) -> Swim:
    swim = Swim(node, 1, config, random.Random(seed))
    for peer in peers:
        swim.add(peer, 1, 0.0)
    return swim


def run(swim: Swim, start: float, until: float) -> list:
    """Tick every STEP from ``start`` to ``until`` (inclusive); every action, in order."""
    actions = []
    for i in range(round((until - start) / STEP) + 1):
        actions += swim.tick(start + i * STEP)
    return actions


def told(actions: list, kind: str) -> list[Tell]:
    return [a for a in actions if isinstance(a, Tell) and kind == a.message.KIND]


def deaths(actions: list) -> list[str]:
    return [a.node for a in actions if isinstance(a, Dead)]


def answer_probes(swim: Swim, actions: list) -> None:
    for tell in told(actions, PROBE):
        swim.handle(tell.node, ProbeAck(tell.message.seq), 0.0)


# ---------------------------------------------------------------- probing


def test_a_probe_is_acked_and_the_next_one_goes_to_the_next_peer() -> None:
    swim = make()
    assert swim.next_deadline() == pytest.approx(INTERVAL)  # the first hello goes first
    assert swim.tick(INTERVAL - STEP) == []
    (probe,) = swim.tick(INTERVAL)
    assert probe.message == Probe(1) and probe.node in "bc"
    assert swim.handle(probe.node, ProbeAck(1), INTERVAL + 0.001) == []
    assert run(swim, INTERVAL + STEP, 2 * INTERVAL - STEP) == []  # acked: no follow-up
    (second,) = swim.tick(2 * INTERVAL)
    assert second.message == Probe(2) and second.node == ({"b", "c"} - {probe.node}).pop()
    assert swim.health == 0 and not swim.is_suspect(probe.node)


@settings(max_examples=50, deadline=None)
@given(peers=st.integers(1, 8), seed=st.integers(0, 2**32 - 1), rounds=st.integers(2, 6))
def test_probes_go_round_robin_over_a_reshuffled_list(peers: int, seed: int, rounds: int) -> None:
    names = "bcdefghi"[:peers]
    swim = make(peers=names, seed=seed)
    targets = []
    for _ in range(peers * rounds):
        actions = swim.tick(swim.next_deadline())
        (probe,) = told(actions, PROBE)
        targets.append(probe.node)
        answer_probes(swim, actions)
    for r in range(rounds):
        assert sorted(targets[r * peers : (r + 1) * peers]) == sorted(names)  # each once
    if peers > 1:
        assert all(x != y for x, y in itertools.pairwise(targets))


def test_a_relayed_ack_from_a_helper_saves_the_target() -> None:
    swim = make(peers="bcde")
    (probe,) = swim.tick(INTERVAL)
    target, seq = probe.node, probe.message.seq
    asks = told(run(swim, INTERVAL + STEP, INTERVAL + TIMEOUT), PROBE_REQ)
    assert len(asks) == 3 and target not in {a.node for a in asks}  # k = 3 others
    assert all(a.message == ProbeReq(seq, target) for a in asks)
    swim.handle(asks[0].node, ProbeAck(seq), INTERVAL + TIMEOUT + 0.01)
    assert not swim.is_suspect(target)
    assert not told(run(swim, INTERVAL + TIMEOUT + 0.02, 2 * INTERVAL), SUSPECT)
    assert swim.health == 0


def test_a_helper_probes_the_target_and_relays_its_ack_or_a_nack() -> None:
    helper = make("h", peers="at")
    (probe,) = helper.handle("a", ProbeReq(41, "t"), 0.0)
    assert probe.node == "t" and probe.message.KIND == PROBE
    relayed = helper.handle("t", ProbeAck(probe.message.seq), 0.01)
    assert relayed == [Tell("a", ProbeAck(41))]
    (probe,) = helper.handle("a", ProbeReq(42, "t"), 0.05)
    nack_at = 0.05 + 0.8 * TIMEOUT
    assert told(run(helper, 0.05, nack_at - STEP), PROBE_NACK) == []
    assert told(helper.tick(nack_at), PROBE_NACK) == [Tell("a", ProbeNack(42))]
    assert helper.handle("t", ProbeAck(probe.message.seq), 0.15) == []  # too late
    unknown = helper.handle("a", ProbeReq(43, "zz"), 0.15)
    assert unknown == [Tell("a", ProbeNack(43))]


# ---------------------------------------------------------------- suspicion


def unanswered_probe(swim: Swim, start: float = INTERVAL) -> tuple[str, list]:
    """Run one probe that nobody answers; (its target, the actions up to the suspicion)."""
    (probe,) = swim.tick(start)
    return probe.node, run(swim, start + STEP, start + INTERVAL)


def test_an_unanswered_probe_makes_a_suspect_that_everyone_hears_of() -> None:
    swim = make(peers="bc")
    target, actions = unanswered_probe(swim)
    assert swim.is_suspect(target)
    suspects = told(actions, SUSPECT)
    assert {t.node for t in suspects} == {"b", "c"}  # the accused too, so it can refute
    assert all(t.message == verdict(SUSPECT, target) for t in suspects)
    again = told(run(swim, 2 * INTERVAL + STEP, 3 * INTERVAL + STEP), SUSPECT)
    assert again and {t.node for t in again} == {target}  # repeated to the accused


def test_the_accused_refutes_and_the_suspicion_ends() -> None:
    accuser = make("a", peers="bc")
    target, actions = unanswered_probe(accuser)
    accused = make(target, peers="abc".replace(target, ""))
    (suspect,) = [t for t in told(actions, SUSPECT) if t.node == target]
    refutation = accused.handle("a", suspect.message, 0.5)
    assert accused.version == 1 and accused.health == 1
    assert {t.node for t in refutation} == set("abc") - {target}
    assert all(t.message == verdict(ALIVE, target, 1, 1) for t in refutation)
    accuser.handle(target, refutation[0].message, 0.5)
    assert not accuser.is_suspect(target)
    assert accuser.peers[target].version == 1
    # An accusation older than the current version gets the news, not a new version.
    again = accused.handle("c", verdict(SUSPECT, target, 1, 0), 0.6)
    assert accused.version == 1 and accused.health == 1 and told(again, ALIVE)


def test_an_unrefuted_suspicion_ends_in_a_dead_verdict_to_everyone_else() -> None:
    swim = make(peers="bcd")
    target, actions = unanswered_probe(swim)
    others = set("bcd") - {target}
    suspected_at = INTERVAL * 2
    low = CFG.suspicion_mult * INTERVAL
    high = low * CFG.suspicion_max_mult
    for other in others:  # keep the others answering
        swim.heard(other, 0.0)
    later = []
    now = suspected_at + STEP
    while not deaths(later):
        actions = swim.tick(now)
        answer_probes(swim, [a for a in actions if a.node != target])
        later += actions
        now += STEP
    assert deaths(later) == [target]
    assert high - STEP <= now - suspected_at <= high + 2 * STEP  # no confirmation: the max
    dead = told(later, DEAD)
    assert {t.node for t in dead} == others
    assert all(t.message == verdict(DEAD, target) for t in dead)
    assert target not in swim.peers


@settings(max_examples=50, deadline=None)
@given(peers=st.integers(2, 40), confirmations=st.integers(0, 6))
def test_confirmations_shrink_the_suspicion_timeout(peers: int, confirmations: int) -> None:
    names = [f"n{i}" for i in range(peers)]
    swim = Swim("a", 1, CFG, random.Random(0))
    for name in names:
        swim.add(name, 1, 0.0)
    suspect = swim.peers[names[0]]
    swim.handle(names[1], verdict(SUSPECT, names[0]), 1.0)
    deadlines = [suspect.suspicion.deadline()]
    for accuser in names[2 : 2 + confirmations]:
        swim.handle(accuser, verdict(SUSPECT, names[0]), 1.0)
        deadlines.append(suspect.suspicion.deadline())
    swim.handle(names[1], verdict(SUSPECT, names[0]), 1.0)  # the same accuser twice
    assert suspect.suspicion.deadline() == deadlines[-1]
    low = CFG.suspicion_mult * INTERVAL * max(1.0, math.log10(peers + 1))
    high = low * CFG.suspicion_max_mult
    expected = min(EXPECTED_CONFIRMATIONS, peers - 1)
    assert all(x >= y for x, y in itertools.pairwise(deadlines))
    assert deadlines[0] == pytest.approx(1.0 + (high if expected else low))
    done = min(confirmations, peers - 2)
    assert (deadlines[-1] == pytest.approx(1.0 + low)) == (done >= expected)


def test_a_dead_verdict_kills_only_the_incarnation_and_version_it_names() -> None:
    swim = make(peers="bc")
    swim.handle("c", verdict(ALIVE, "b", 1, 3), 0.1)
    assert swim.handle("c", verdict(DEAD, "b", 1, 2), 0.2) == []  # older than version 3
    assert swim.handle("c", verdict(DEAD, "b", 0, 9), 0.2) == []  # an older life
    swim.remove("b")
    swim.add("b", 2, 0.3)  # b restarted
    assert swim.handle("c", verdict(DEAD, "b", 1, 9), 0.4) == []  # news of the old life
    assert swim.handle("c", verdict(SUSPECT, "b", 1, 9), 0.4) == [] and not swim.is_suspect("b")
    assert swim.handle("c", verdict(DEAD, "b", 2, 0), 0.5) == [Dead("b", "declared dead by c")]
    assert "b" not in swim.peers


@settings(max_examples=200, deadline=None)
@given(
    news=st.lists(
        st.tuples(
            st.sampled_from([SUSPECT, ALIVE, DEAD]),
            st.sampled_from([4, 5, 6]),  # older life, current, not met yet
            st.integers(0, 5),
        ),
        max_size=20,
    )
)
def test_verdicts_follow_incarnation_and_version_order(news: list) -> None:
    swim = make(peers="bc")
    swim.remove("b")
    swim.add("b", 5, 0.0)
    held = 0
    for kind, incarnation, version in news:
        actions = swim.handle("c", verdict(kind, "b", incarnation, version), 0.1)
        if "b" not in swim.peers:
            assert deaths(actions) == ["b"]
            assert (kind, incarnation) == (DEAD, 5) and version >= held
            return
        assert deaths(actions) == []
        newer = incarnation == 5 and version > held
        if incarnation == 5 and version >= held and kind != DEAD:
            held = version
        assert swim.peers["b"].version == held
        if kind == ALIVE and newer:
            assert not swim.is_suspect("b")
        if kind == SUSPECT and incarnation == 5 and version >= held:
            assert swim.is_suspect("b")


def test_verdicts_about_itself_are_refuted_only_for_its_own_incarnation() -> None:
    swim = make("a", peers="bc")
    assert swim.handle("b", verdict(SUSPECT, "a", 0, 5), 0.1) == []  # an older life of a
    assert swim.handle("b", verdict(ALIVE, "a", 1, 5), 0.1) == []
    refutation = swim.handle("b", verdict(DEAD, "a", 1, 5), 0.1)
    assert swim.version == 6 and {t.node for t in refutation} == {"b", "c"}


@pytest.mark.parametrize(
    "message",
    [
        [PROBE],
        [PROBE, []],
        [PROBE, {"seq": "1"}],
        ProbeAck(True),
        [PROBE_REQ, {"seq": 1}],
        [PROBE_REQ, {"seq": 1, "target": ""}],
        [SUSPECT, {"node": "b", "inc": 1}],
        [DEAD, {"node": 3, "inc": 1, "ver": 0}],
    ],
)
def test_malformed_detector_messages_are_refused(message: list) -> None:
    with pytest.raises(ProtocolError):
        decode_message(message)


# ---------------------------------------------------------------- health and stalls


def test_missing_nacks_raise_local_health_and_stretch_probe_timeouts() -> None:
    swim = make(peers="bcde")
    (probe,) = swim.tick(INTERVAL)
    asks = told(run(swim, INTERVAL + STEP, INTERVAL + TIMEOUT), PROBE_REQ)
    swim.handle(asks[0].node, ProbeNack(probe.message.seq), 0.31)
    run(swim, 0.31, 2 * INTERVAL - STEP)
    assert swim.health == 0
    (probe,) = told(swim.tick(2 * INTERVAL), PROBE)  # the failed one ends, the next starts
    assert swim.health == 2  # two of three helpers never answered
    asked_at = 2 * INTERVAL + TIMEOUT * 3  # the probe timeout, stretched 3 times
    assert told(run(swim, 2 * INTERVAL + STEP, asked_at - STEP), PROBE_REQ) == []
    assert told(swim.tick(asked_at), PROBE_REQ)
    swim.handle(probe.node, ProbeAck(probe.message.seq), asked_at + STEP)
    assert swim.health == 1  # an ack lowers it again


def test_health_stays_within_bounds() -> None:
    swim = make(peers="b")
    for _ in range(20):
        swim.handle("b", verdict(SUSPECT, "a", 1, swim.version), 0.0)
    assert swim.health == HEALTH_MAX - 1 and swim.version == 20


def test_a_late_tick_judges_no_probe_in_flight() -> None:
    swim = make(peers="bc", config=SwimConfig())  # silence backstop included
    (probe,) = swim.tick(INTERVAL)
    stalled_until = INTERVAL + 5.0  # our own loop stopped for 5 s
    actions = swim.tick(stalled_until)
    assert not told(actions, SUSPECT) and deaths(actions) == []
    assert swim.counts["stalls"] == 1 and swim.health == 1
    # The ack that waited in our socket is still taken.
    swim.handle(probe.node, ProbeAck(probe.message.seq), stalled_until + 0.001)
    assert not swim.is_suspect(probe.node)
    # With nobody answering after the stall, detection resumes: the stall excuses once.
    later = run(swim, stalled_until + STEP, stalled_until + 3.0)
    assert told(later, SUSPECT)


def test_the_silence_backstop_drops_a_peer_without_a_verdict() -> None:
    swim = make(peers="bc", config=SwimConfig(silence_timeout=2.0))
    now = 0.0
    actions: list = []
    while not deaths(actions):
        now += STEP
        swim.heard("c", now)
        actions = swim.tick(now)
        for tell in told(actions, PROBE) + told(actions, PROBE_REQ):
            swim.handle(tell.node, ProbeAck(tell.message.seq), now)
    assert deaths(actions) == ["b"] and now == pytest.approx(2.0)
    assert told(actions, DEAD) == []
