"""The recovery's steps without sockets: ``Pager`` paging, ``fetching`` and
``recovering`` as typed steps, and a property over random losses and retention."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.client.recovery_cases import Key, entries, entry, m, serve, started
from zdps.client.recovery import (
    FETCH_ATTEMPTS,
    FETCH_RETRY,
    GAP_RECHECK,
    Delivery,
    Fetch,
    Gap,
    Pager,
    Recovery,
    fetching,
    recovering,
)
from zdps.client.steps import Request, Sleep
from zdps.wire.api import HistoryQuery
from zdps.wire.limits import HISTORY_PAGE

pytestmark = pytest.mark.timeout(30)


# ---------------------------------------------------------------------- Pager


def test_a_pager_from_since_goes_on_after_the_last_entry() -> None:
    pager = Pager.make("t", since=3)
    assert pager.query == HistoryQuery("t", since=3)
    pager.feed({"entries": entries((2, 3), (2, 4)), "more": True})
    assert not pager.done
    assert pager.query == HistoryQuery("t", after=(2, 4))
    pager.feed({"entries": entries((2, 5)), "more": False})
    assert pager.done
    assert pager.entries == entries((2, 3), (2, 4), (2, 5))


def test_a_pager_for_a_range_keeps_its_end() -> None:
    pager = Pager.make("t", after=(1, 2), until=(2, 5))
    assert pager.query == HistoryQuery("t", after=(1, 2), until=(2, 5))
    pager.feed({"entries": entries((1, 3), (2, 1)), "more": True})
    assert pager.query == HistoryQuery("t", after=(2, 1), until=(2, 5))
    pager.feed({"entries": entries((2, 2)), "more": True})
    pager.feed({"entries": [], "more": False})
    assert pager.done and pager.entries == entries((1, 3), (2, 1), (2, 2))


def test_a_pager_stops_at_an_empty_page_even_if_more_is_claimed() -> None:
    pager = Pager.make("t")
    assert pager.query == HistoryQuery("t", after=(0, 0))
    pager.feed({"entries": entries((1, 1)), "more": True})
    assert not pager.done
    pager.feed({"entries": [], "more": True})
    assert pager.done and pager.entries == entries((1, 1))


def test_a_pager_of_one_page() -> None:
    pager = Pager.make("t", since=0)
    pager.feed({"entries": [], "more": False})
    assert pager.done and pager.entries == []


# ---------------------------------------------------------------------- the steps


def test_fetching_asks_page_after_page() -> None:
    steps = fetching(Pager.make("t", since=0))
    assert next(steps) == Request(HistoryQuery("t", since=0))
    page = {"entries": entries((1, 1)), "more": True}
    assert steps.send(page) == Request(HistoryQuery("t", after=(1, 1)))
    with pytest.raises(StopIteration) as done:
        steps.send({"entries": [], "more": False})
    assert done.value.value == entries((1, 1))


def test_fetching_retries_a_failed_request_then_gives_up() -> None:
    steps = fetching(Pager.make("t", after=(1, 2)))
    step = next(steps)
    for attempt in range(FETCH_ATTEMPTS):
        assert step == Request(HistoryQuery("t", after=(1, 2)))
        assert steps.send(None) == Sleep(FETCH_RETRY)  # the request failed
        try:
            step = next(steps)
        except StopIteration as done:
            assert attempt == FETCH_ATTEMPTS - 1 and done.value is None
            return
    raise AssertionError("fetching did not give up")


def test_recovering_asks_again_before_reporting_a_gap() -> None:
    recovery = started((1, 1))
    fetch = recovery.live(m(1, 4))
    assert isinstance(fetch, Fetch)
    steps = recovering(recovery, m(1, 4), fetch)
    query = HistoryQuery("t", after=(1, 1), until=(1, 4))
    assert next(steps) == Request(query)
    assert steps.send({"entries": entries((1, 2)), "more": False}) == Sleep(GAP_RECHECK)
    assert next(steps) == Request(query)  # (1, 3) may still be on its way to the owner
    with pytest.raises(StopIteration) as done:
        steps.send({"entries": entries((1, 2), (1, 3)), "more": False})
    assert done.value.value == [m(1, 2), m(1, 3), m(1, 4)]


def test_recovering_without_a_gap_asks_once() -> None:
    recovery = started((1, 1))
    fetch = recovery.live(m(1, 3))
    assert isinstance(fetch, Fetch)
    steps = recovering(recovery, m(1, 3), fetch)
    assert isinstance(next(steps), Request)
    with pytest.raises(StopIteration) as done:
        steps.send({"entries": entries((1, 2)), "more": False})
    assert done.value.value == [m(1, 2), m(1, 3)]


# ---------------------------------------------------------------------- the property


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Key], list[int]]:
    """A true sequence over 1-3 epochs, and the indices of it delivered live, in order,
    with some dropped and some duplicated (a copy of an earlier live one, later)."""
    epochs = sorted(draw(st.sets(st.integers(1, 9), min_size=1, max_size=3)))
    true = [(e, s) for e in epochs for s in range(1, draw(st.integers(1, 8)) + 1)]
    kept = draw(st.lists(st.booleans(), min_size=len(true), max_size=len(true)))
    live = [i for i, keep in enumerate(kept) if keep] or [draw(st.integers(0, len(true) - 1))]
    with_copies: list[int] = []
    for i in live:
        with_copies.append(i)
        if draw(st.integers(0, 3)) == 0:
            with_copies.append(draw(st.sampled_from(with_copies)))
    return true, with_copies


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.integers(1, 4), st.data())
def test_recovery_delivers_or_reports_everything_history_allows(
    scenario: tuple[list[Key], list[int]], page: int, data: st.DataObject
) -> None:
    """Live messages with losses and copies; each fetch is answered, page by page, from a
    history that is a window of the true sequence (retention drops its oldest), fails at
    times, or comes back with entries outside the range asked for."""
    true, live = scenario
    position = {key: i for i, key in enumerate(true)}
    recovery = Recovery()
    out: list[Delivery] = []
    fetches: list[tuple[Key, Key, set[Key], bool]] = []  # (after, until, held, answered)
    oldest = 0  # retention only ever drops the oldest entries

    def fetch(request: Fetch) -> list[list] | None:
        nonlocal oldest
        until = position[request.until]
        # History: the true sequence from `oldest` up to at least the live message.
        oldest = data.draw(st.integers(oldest, len(true)), label="oldest")
        newest = data.draw(st.integers(max(oldest, until + 1), len(true)), label="newest")
        history = true[oldest:newest]
        if data.draw(st.integers(0, 5), label="fails") == 0:
            fetches.append((request.after, request.until, set(), False))
            return None
        fetches.append(
            (
                request.after,
                request.until,
                {k for k in history if request.after < k < request.until},
                True,
            )
        )
        pager = Pager.make(request.topic, after=request.after, until=request.until)
        assert pager.query.args() == {
            "topic": "t",
            "after": list(request.after),
            "until": list(request.until),
            "limit": HISTORY_PAGE,
        }
        while not pager.done:
            pager.feed(serve(history, pager.query.args(), page))
        got = pager.entries
        if data.draw(st.booleans(), label="sloppy"):  # a node that ignores the range
            got = [entry(*k) for k in history if k <= request.after] + got
            got += [entry(*k) for k in history if k >= request.until]
        return got

    for i in live:
        msg = m(*true[i])
        cursor = recovery.cursor("t")
        state = recovery.topics.get("t")
        oldest_known = min(state.seen.items()) if state else None
        outcome = recovery.live(msg)
        if isinstance(outcome, Fetch):
            # A gap fetches from the cursor; a new epoch from the oldest known position.
            after = oldest_known if msg.epoch > cursor[0] else cursor
            assert outcome == Fetch("t", after, true[i])
            outcome = recovery.recovered(msg, fetch(outcome))
            _, _, held, answered = fetches[-1]
            if answered:  # a gap reported after an answer is not in history
                assert not held & gap_keys(outcome), (held, outcome)
        out += outcome

    # No duplicate; messages and gaps in the true sequence, in seq order per epoch (an
    # older epoch's messages may come late, after a newer epoch's).
    keys: list[Key] = []
    delivered: set[Key] = set()
    for item in out:
        if isinstance(item, Gap):
            assert item.topic == "t" and 1 <= item.first <= item.last
            keys += [(item.epoch, s) for s in range(item.first, item.last + 1)]
        else:
            assert item == m(item.epoch, item.seq)  # its own payload
            keys.append((item.epoch, item.seq))
            delivered.add(keys[-1])
    assert len(keys) == len(set(keys)), out
    assert set(keys) <= set(true)
    for epoch in {e for e, _ in keys}:
        seqs = [s for e, s in keys if e == epoch]
        assert seqs == sorted(seqs), out

    # Every live message is delivered, and so is everything history held in a fetch
    # (unless an earlier, failed, fetch reported it lost).
    covered = set(keys)
    assert {true[i] for i in live} <= delivered
    for after, until, held, _ in fetches:
        assert held <= covered, (after, until, held - covered)

    # From the first live message to the last, everything is delivered or in a gap,
    # except an epoch's unknown tail: after the last delivered of its epoch, in a
    # fetched range, and never in history when a fetch covered it.
    last_delivered: dict[int, int] = {}
    for epoch, seq in delivered:
        last_delivered[epoch] = max(seq, last_delivered.get(epoch, 0))
    for key in true[live[0] : max(live) + 1]:
        if key in covered:
            continue
        assert key[1] > last_delivered.get(key[0], 0), (key, out)
        spans = [held for after, until, held, _ in fetches if after < key < until]
        assert spans and all(key not in held for held in spans), (key, fetches)


def gap_keys(items: list[Delivery]) -> set[Key]:
    return {(g.epoch, s) for g in items if isinstance(g, Gap) for s in range(g.first, g.last + 1)}
