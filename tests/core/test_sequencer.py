"""The ``Sequencer`` alone (zdps/core/sequencing.py, docs/PROTOCOL.md §7.2): epochs only
grow, start above the topic's history and end in the owner's tag, so that two owners
never open the same one; a batch of n takes n consecutive seqs; idle and disowned
topics are forgotten. The owner's path in a cluster: test_sequencing.py."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from zdps.core.sequencing import EPOCH_TAGS, Sequencer, epoch_tag

pytestmark = pytest.mark.timeout(60)


def test_epochs_only_grow_and_start_above_the_historys() -> None:
    newest: dict[str, int] = {}  # the newest epoch in each topic's history
    sequencer = Sequencer(1_000, 10.0, lambda topic: newest.get(topic, 0), "a")

    def ms(epoch: int) -> int:
        assert epoch % EPOCH_TAGS == epoch_tag("a")  # every epoch ends in the node's tag
        return epoch // EPOCH_TAGS

    def stamp(topic: str, now: float) -> tuple[int, int]:
        epoch, seq = sequencer.stamp(topic, now)
        return ms(epoch), seq

    assert stamp("t", 10.0) == (1_000, 1)  # the clock: base + elapsed ms
    assert stamp("t", 10.5) == (1_000, 2)  # one epoch while sequencing
    assert stamp("u", 10.0) == (1_001, 1)  # same millisecond: still larger
    assert stamp("w", 5.0) == (1_002, 1)  # a clock behind: still larger
    sequencer.forget("t")
    assert stamp("t", 12.0) == (3_000, 1)
    newest["v"] = 9_999 * EPOCH_TAGS + 900  # history from an owner whose clock is ahead
    assert stamp("v", 12.0) == (10_000, 1)
    sequencer.forget("t")
    assert stamp("t", 12.0) == (10_001, 1)  # and every later epoch is above it
    assert ms(sequencer.epoch("t")) == 10_001 and sequencer.epoch("never") == 0


@given(
    floor=st.integers(0, 2**50),
    clocks=st.lists(st.integers(0, 2**40), min_size=2, max_size=2),
    nodes=st.lists(st.text(min_size=1, max_size=8), min_size=2, max_size=2, unique=True),
)
def test_two_owners_above_the_same_history_open_different_epochs(
    floor: int, clocks: list[int], nodes: list[str]
) -> None:
    """The two sides of a netsplit both hold the same history and open a new epoch above
    it, often in the same millisecond: their tags keep the two epochs apart, so one
    position never names two messages."""
    assume(epoch_tag(nodes[0]) != epoch_tag(nodes[1]))  # 1 pair in 1024 shares a tag
    epochs = [
        Sequencer(clock, 0.0, lambda _: floor, node).stamp("t", 0.0)[0]
        for clock, node in zip(clocks, nodes, strict=True)
    ]
    assert epochs[0] != epochs[1] and min(epochs) > floor
    assert max(epochs) < 2**53  # exact in JSON, for the gateway's clients


@given(sizes=st.lists(st.integers(1, 4096), min_size=1, max_size=20))
def test_a_batch_of_n_takes_n_consecutive_seqs(sizes: list[int]) -> None:
    sequencer = Sequencer(1_000, 0.0)
    stamps = [sequencer.stamp("t", 0.0, n) for n in sizes]
    epoch = 1_000 * EPOCH_TAGS + epoch_tag("")
    assert stamps == [(epoch, 1 + sum(sizes[:i])) for i in range(len(sizes))]
    assert sequencer.stamp("t", 0.0) == (epoch, 1 + sum(sizes))  # and the next one after


def test_idle_and_disowned_topics_are_forgotten() -> None:
    sequencer = Sequencer(1_000, 0.0)
    for topic in ("busy", "idle", "moved"):
        sequencer.stamp(topic, 0.0)
    sequencer.stamp("busy", 6.0)
    sequencer.forget_idle(6.0, 5.0)
    assert (sequencer.epoch("busy") > 0, sequencer.epoch("idle")) == (True, 0)
    sequencer.retain(lambda topic: topic != "moved")
    assert sequencer.epoch("moved") == 0 and len(sequencer) == 1
