"""History requests (zdps/core/history_fetch.py): a client asks any node, the owner answers.

* ``history`` reads a topic's history from its owner through any node: the owner
  answers from its own store; another node forwards the request (``history``) and
  relays the owner's answer (``history_rep``), and only the owner's.
* It fails with ``no_route`` without a link to the owner, ``owner_lost`` if the owner
  goes down first, ``timeout`` after the request timeout.
* ``since``, ``after`` and ``limit`` select a page; ``more`` says whether the range
  goes on. Pages count messages, not the batches they were published and stored in.

Sans-IO tests drive ``HistoryFetches`` directly and read the ``Outbox``; the others run
the simulated cluster (tests/core/node_net.py).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.helpers import FAST, cluster, history, placed, stored, topic_owned_by
from zdps.core.history import HistoryStore
from zdps.core.history_fetch import HistoryFetches
from zdps.core.outbox import Outbox
from zdps.core.ring import HashRing
from zdps.core.tunables import CoreConfig
from zdps.wire import API_REPLY, E_NO_ROUTE, E_OWNER_LOST, E_TIMEOUT
from zdps.wire.api import HistoryQuery
from zdps.wire.batches import pack_batch
from zdps.wire.data import Retention
from zdps.wire.requests import History, HistoryRep

pytestmark = pytest.mark.timeout(120)

CLIENT = b"client"
TIMEOUT = 8.0


def endpoint(node: str) -> str | None:
    return None if node == "gone" else f"inproc://{node}"


def fetches(nodes: str | list[str] = "abc") -> HistoryFetches:
    """Node ``a``'s history requests on a ring of ``nodes``."""
    counters = {"history_served": 0}
    store = HistoryStore(Retention(100, 60.0))
    return HistoryFetches("a", HashRing(nodes), endpoint, store, counters, TIMEOUT)


def replies(out: Outbox) -> list:
    return [frame[1:] for frame in out.clients.get(CLIENT, []) if frame[0] == API_REPLY]


def codes(out: Outbox) -> list[tuple[int, str]]:
    return [(ref, result["code"]) for ref, ok, result in replies(out) if not ok]


# ---------------------------------------------------------------- HistoryFetches


def test_the_owner_answers_from_its_own_store() -> None:
    part, out = fetches(), Outbox()
    topic = topic_owned_by("a", "abc")
    for seq in (1, 2):
        part.history.store(topic, 9, seq, 1, pack_batch([b"%d" % seq]), 0.0)
    part.request(CLIENT, 7, HistoryQuery(topic, since=0), 1.0, out)
    entries = [[9, 1, b"1"], [9, 2, b"2"]]
    assert replies(out) == [
        [7, True, {"topic": topic, "node": "a", "entries": entries, "more": False}]
    ]
    assert out.peers == {} and part.counters["history_served"] == 2


def test_the_owner_answers_per_message_from_stored_batches() -> None:
    part, out = fetches(), Outbox()
    topic = topic_owned_by("a", "abc")
    part.history.store(topic, 9, 1, 3, pack_batch([b"1", b"2", b"3"]), 0.0)
    part.history.store(topic, 9, 4, 2, pack_batch([b"4", b"5"]), 0.0)
    part.request(CLIENT, 7, HistoryQuery(topic, after=(9, 1), limit=3), 1.0, out)
    entries = [[9, 2, b"2"], [9, 3, b"3"], [9, 4, b"4"]]  # across the two batches
    assert replies(out) == [
        [7, True, {"topic": topic, "node": "a", "entries": entries, "more": True}]
    ]
    assert part.counters["history_served"] == 3  # messages, not batches


def test_another_node_forwards_to_the_owner_and_relays_its_answer() -> None:
    part, out = fetches(), Outbox()
    topic = topic_owned_by("b", "abc")
    query = HistoryQuery(topic, after=(3, 4), limit=5)
    part.request(CLIENT, 7, query, 1.0, out)
    assert out.peers == {endpoint("b"): [History(1, query)]} and replies(out) == []
    result = {"topic": topic, "node": "b", "entries": [], "more": False}
    part.on_history_rep("b", HistoryRep(99, result), 1.1, out)  # not ours
    part.on_history_rep("c", HistoryRep(1, result), 1.1, out)  # not the owner
    assert replies(out) == []
    part.on_history_rep("b", HistoryRep(1, result), 1.2, out)
    part.on_history_rep("b", HistoryRep(1, result), 1.3, out)  # answered once
    assert replies(out) == [[7, True, result]]


def test_without_a_link_to_the_owner_it_is_no_route() -> None:
    part, out = fetches(["a", "gone"]), Outbox()
    topic = topic_owned_by("gone", ["a", "gone"])
    part.request(CLIENT, 7, HistoryQuery(topic, since=0), 1.0, out)
    assert codes(out) == [(7, E_NO_ROUTE)] and out.peers == {}


def test_the_owner_going_down_fails_its_requests_with_owner_lost() -> None:
    part, out = fetches(), Outbox()
    part.request(CLIENT, 7, HistoryQuery(topic_owned_by("b", "abc"), since=0), 1.0, out)
    part.request(CLIENT, 8, HistoryQuery(topic_owned_by("c", "abc"), since=0), 1.0, out)
    part.peer_down("b", out)
    assert codes(out) == [(7, E_OWNER_LOST)]
    part.on_history_rep("c", HistoryRep(2, {"entries": []}), 1.1, out)
    assert replies(out)[1] == [8, True, {"entries": []}]


def test_an_unanswered_request_times_out() -> None:
    part, out = fetches(), Outbox()
    part.request(CLIENT, 7, HistoryQuery(topic_owned_by("b", "abc"), since=0), 1.0, out)
    part.expire(1.0 + TIMEOUT - 0.01, out)
    assert replies(out) == []
    part.expire(1.0 + TIMEOUT, out)
    assert codes(out) == [(7, E_TIMEOUT)]
    part.on_history_rep("b", HistoryRep(1, {}), 9.5, out)  # too late
    assert len(replies(out)) == 1


def test_asked_by_a_peer_the_node_answers_from_its_store() -> None:
    part, out = fetches(), Outbox()
    part.history.store("t", 9, 1, 1, pack_batch([b"x"]), 0.0)
    part.on_history("c", History(4, HistoryQuery("t", since=0)), 1.0, out)
    result = {"topic": "t", "node": "a", "entries": [[9, 1, b"x"]], "more": False}
    assert out.peers == {endpoint("c"): [HistoryRep(4, result)]}


# ---------------------------------------------------------------- in the cluster


@FAST
@given(
    epochs=st.lists(st.lists(st.integers(1, 3), min_size=1, max_size=3), min_size=1, max_size=3),
    since=st.integers(0, 10),
    limit=st.integers(1, 6),
)
def test_history_since_after_limit_and_paging(
    epochs: list[list[int]], since: int, limit: int
) -> None:
    """Each epoch's publishes are batches of the drawn sizes; pages are per message."""
    net = cluster("ab", CoreConfig(idle_topic_ttl=1.0))
    topic = placed("ab", "ab")
    for sizes in epochs:  # each run of publishes after an idle pause opens a new epoch
        for size in sizes:
            net.publish_run("b", topic, [b"%d" % i for i in range(size)])
        net.run_until_quiet()
        net.advance(1.5)
    everything = [list(entry) for entry in stored(net, "a", topic)]
    assert len(everything) == sum(map(sum, epochs))
    assert len({e for e, _, _ in everything}) == len(epochs)
    newest = everything[-1][0]

    result = history(net, "b", topic, since=since, limit=limit)
    if since == 0:
        wanted = everything
    else:
        wanted = [e for e in everything if e[0] == newest and e[1] >= since]
    assert result["node"] == "a"
    assert result["entries"] == wanted[:limit]
    assert result["more"] == (bool(wanted[:limit]) and wanted[:limit][-1] != everything[-1])

    pages, after = [], [0, 0]
    while True:
        page = history(net, "b", topic, after=after, limit=limit)
        assert 1 <= len(page["entries"]) <= limit
        pages += page["entries"]
        after = page["entries"][-1][:2]
        if not page["more"]:
            break
    assert pages == everything
    assert history(net, "b", topic, after=after, limit=limit) == {
        "topic": topic,
        "node": "a",
        "entries": [],
        "more": False,
    }


def test_history_of_a_topic_without_messages_is_empty() -> None:
    net = cluster("ab")
    for node in "ab":
        for args in ({"since": 0}, {"since": 3}, {"after": [0, 0]}):
            result = history(net, node, "nothing", **args)
            assert (result["entries"], result["more"]) == ([], False)
