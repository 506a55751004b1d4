"""Seeds (zdps/core/seeds.py): what a node says hello to, and what it tells of a silent seed.

* the first hello goes at once, each retry on a fresh connection with a doubling
  back-off; a seed with a node known there is left alone;
* a configured seed silent for WARN_AFTER seconds is reported, then every WARN_EVERY
  seconds, with what its connection showed; an answer ends it;
* lost peers and old endpoints are redialled only until they expire, and then their
  connection is dropped (unless a node is known there); they are never warned about;
* the status view names, per configured seed, the node known there or how long it
  has been waiting.
"""

from __future__ import annotations

import itertools

import pytest

from zdps.core.seeds import CONNECTION, REDIALS_PER_SECOND, WARN_AFTER, WARN_EVERY, Seeds

pytestmark = pytest.mark.timeout(30)

SEED = "tcp://127.0.0.1:7710"


def nobody(_endpoint: str, _answered_by: str | None) -> bool:
    return False


def make() -> Seeds:
    return Seeds([SEED, SEED], retry_min=0.25, retry_max=2.0)


def steps(seeds: Seeds, until: float, skip=nobody) -> list[tuple]:
    """(time, endpoint, step) of what ``due`` says at every 50 ms up to ``until``."""
    out = []
    for tick in range(round(until * 20) + 1):
        t = tick / 20
        out += [(t, endpoint, step) for endpoint, step in seeds.due(t, skip)]
    return out


def test_first_hello_at_once_then_fresh_connections_with_backoff() -> None:
    seeds = make()
    sent = steps(seeds, 4.0)
    assert sent[0] == (0.0, SEED, "hello")
    assert {step for _, _, step in sent[1:]} == {"retry"}
    gaps = [round(b[0] - a[0], 2) for a, b in itertools.pairwise(sent)]
    assert gaps == [0.25, 0.5, 1.0, 2.0]


def test_a_seed_with_a_node_known_there_is_not_dialled() -> None:
    seeds = make()
    assert steps(seeds, 3.0, skip=lambda endpoint, by: True) == []


def test_a_silent_seed_is_warned_about_with_what_its_connection_showed() -> None:
    seeds = make()
    list(seeds.due(0.0, nobody))
    assert seeds.warnings(WARN_AFTER - 0.1, nobody) == []
    seeds.connection(SEED, "refused")
    (warning,) = seeds.warnings(WARN_AFTER, nobody)
    assert warning.level == "warning"
    assert str(warning) == (
        f'seed_silent seed={SEED} waited_s={WARN_AFTER} why="{CONNECTION["refused"]}"'
    )
    assert seeds.warnings(WARN_AFTER + WARN_EVERY - 0.1, nobody) == []
    seeds.connection(SEED, "zeromq")
    (again,) = seeds.warnings(WARN_AFTER + WARN_EVERY, nobody)
    assert "not a cluster endpoint (an API endpoint?)" in str(again)


def test_an_answer_ends_the_warnings_and_shows_in_the_view() -> None:
    seeds = make()
    list(seeds.due(0.0, nobody))
    (row,) = seeds.view(3.0, "a", lambda endpoint, by: None)
    assert row == {
        "endpoint": SEED, "state": "waiting", "node": None, "waiting_s": 3.0, "hellos": 1,
        "connection": None,
    }  # fmt: skip
    seeds.answered(SEED, "b")
    assert seeds.warnings(WARN_AFTER * 2, nobody) == []
    (row,) = seeds.view(10.0, "a", lambda endpoint, by: by)
    assert (row["state"], row["node"], row["waiting_s"]) == ("answered", "b", None)
    (row,) = seeds.view(10.0, "a", lambda endpoint, by: "a")
    assert row["state"] == "self"


def test_lost_peers_expire_drop_their_connection_and_are_never_warned_about() -> None:
    seeds = Seeds([], retry_min=0.25, retry_max=2.0)
    lost = "tcp://127.0.0.1:7720"
    seeds.redial(lost, now=0.0, ttl=3.0)
    sent = steps(seeds, 4.0)
    assert sent[0] == (0.25, lost, "hello") and sent[-1][1:] == (lost, "drop")
    assert all(t <= 3.05 for t, _, _ in sent)
    assert lost not in seeds
    seeds.redial(lost, now=10.0, ttl=3.0)
    assert seeds.warnings(30.0, nobody) == [] and seeds.view(30.0, "a", lambda e, by: None) == []
    known = steps(seeds, 20.0, skip=lambda endpoint, by: True)
    assert known == []  # expired while a node is known there: its link is kept


@pytest.mark.parametrize("lost", [5, 100, 500])
def test_redials_of_many_lost_peers_stay_within_their_rate_and_seeds_keep_theirs(
    lost: int,
) -> None:
    """Half of 1,000 nodes cut off: each node redials 500 endpoints. Their first hellos
    and their backoffs are spread over REDIALS_PER_SECOND hellos a second (beyond 2 s
    when more than 20 are lost; a few lost peers go at the usual 0.25, 0.5, 1 and 2 s);
    a configured seed is still retried every 2 s."""
    seeds = make()
    for i in range(lost):
        seeds.redial(f"tcp://127.0.0.1:{20000 + i}", 0.0, ttl=600.0)
    sent = steps(seeds, 300.0)
    for start in range(0, 300, 10):  # from the first hellos on, in any 10 s
        window = [t for t, e, _ in sent if e != SEED and start <= t < start + 10]
        assert len(window) / 10 <= REDIALS_PER_SECOND * 1.1, start
    late = [(t, e) for t, e, _ in sent if t >= 150.0]  # the backoffs have reached their top
    rate = len([t for t, e in late if e != SEED]) / 150.0
    assert rate == pytest.approx(min(lost / 2.0, REDIALS_PER_SECOND), rel=0.1)
    seed_gaps = [b - a for a, b in itertools.pairwise(t for t, e in late if e == SEED)]
    assert seed_gaps and max(seed_gaps) == pytest.approx(2.0)


def test_a_seed_known_through_others_is_not_warned_about_even_before_due_looks() -> None:
    """``due`` looks at a seed only at its next try; the warnings ask who is known."""
    seeds = make()
    list(seeds.due(0.0, nobody))
    assert seeds.warnings(WARN_AFTER, lambda endpoint, by: True) == []
    assert seeds.warnings(WARN_AFTER + WARN_EVERY, nobody) == []  # waiting began anew


def test_due_looks_at_nothing_before_the_first_retry_or_expiry() -> None:
    """Hundreds of lost peers redialed: a wake-up between their retries costs nothing."""
    seeds = Seeds([], retry_min=0.25, retry_max=2.0)
    looked: list[str] = []

    def skip(endpoint: str, by: str | None) -> bool:
        looked.append(endpoint)
        return False

    for i in range(100):
        seeds.redial(f"tcp://127.0.0.1:{8000 + i}", now=0.0, ttl=30.0)
    list(seeds.due(0.1, skip))
    assert looked == []  # the first retry is at 0.25 at the earliest
    first = list(seeds.due(0.25, skip))
    assert len(first) == 1 and len(looked) == 100
    looked.clear()
    list(seeds.due(0.3, skip))
    assert looked == []  # the next one is 0.1 s later (REDIALS_PER_SECOND spreads them)
    assert len(list(seeds.due(0.36, skip))) == 1
    seeds.redial("tcp://127.0.0.1:9999", now=0.4, ttl=30.0)  # a new one is not missed
    assert [e for e, _ in seeds.due(100.0, skip)][-1] == "tcp://127.0.0.1:9999"
