"""Handoff (zdps/core/handoff.py): the history a node holds follows the ring.

* Ring changes hand the history to the nodes newly in a topic's placement, in
  ``handoff`` messages of at most ``HANDOFF_BYTES`` of payload; a holder no longer in
  it forgets it. A new owner's epochs stay above every stored epoch.
* A receiver that merged entries it did not have passes the topic on to the rest of
  the placement as it sees it, never back to the sender, and starts a new epoch: after
  a netsplit heals the owner ends up with both sides' history.
* Once a second, history older than its retention is dropped, at the owner and at the
  replicas alike.

Sans-IO tests drive ``HistoryHandoff`` directly and read the ``Outbox``; the others run
the simulated cluster (tests/core/node_net.py).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.core.helpers import cluster, history, placed, publish, stored
from tests.core.node_net import WALL_START_NS, SimNet, wait_for
from zdps.core import handoff as handoff_module
from zdps.core.acks import Routes
from zdps.core.flow import FlowControl
from zdps.core.handoff import HistoryHandoff
from zdps.core.history import HistoryStore
from zdps.core.interest import InterestCache
from zdps.core.outbox import Outbox
from zdps.core.overlay import Overlay
from zdps.core.replication import Replication
from zdps.core.ring import HashRing
from zdps.core.sequencing import Owner, Sequencer
from zdps.core.status import COUNTERS
from zdps.topics import exact_group
from zdps.wire import HANDOFF, LEVEL_OWNER
from zdps.wire.data import Handoff, HandoffEntry, Retention, Store

pytestmark = pytest.mark.timeout(120)


def endpoint(node: str) -> str:
    return f"inproc://{node}"


def make_handoff(node: str = "a", nodes: str = "abc", default: int = 100) -> HistoryHandoff:
    ring = HashRing(nodes)
    history = HistoryStore(Retention(default, 60.0))
    sequencer = Sequencer(1_000, 0.0, history.last_epoch)
    replication = Replication(node, ring, history, 1)
    return HistoryHandoff(node, ring, endpoint, history, replication, sequencer)


def history_epoch(net: SimNet, topic: str) -> int:
    """The epoch the topic's owner is sequencing it in."""
    return net.core(net.owner(topic)).sequencer.epoch(topic)


# ---------------------------------------------------------------- HistoryHandoff


def test_a_ring_change_hands_the_history_to_the_new_placement_and_drops_what_left() -> None:
    part = make_handoff("a")
    stays = placed("abc", "ca", then=("ab", "ab"))
    leaves = placed("abc", "bc", then=("ab", "ba"))
    for topic in (stays, leaves):
        part.history.store(topic, 5, 1, topic.encode(), 0.0)
    out = Outbox()
    part.ring_changed(frozenset("ab"), 1.0, out)
    sent = sorted(entry.topic for message in out.peers[endpoint("c")] for entry in message.entries)
    assert set(out.peers) == {endpoint("c")} and sent == sorted([stays, leaves])
    assert part.history.held() == [stays]


def test_history_goes_in_chunks_of_at_most_handoff_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handoff_module, "HANDOFF_BYTES", 10)
    part = make_handoff("a")
    topic = placed("abc", "ab")
    part.history.configure(topic, Retention(50, 60.0), 0.0)
    for seq in range(1, 6):
        part.history.store(topic, 5, seq, b"%04d" % seq, 0.0)
    out = Outbox()
    part.hand_over("c", topic, 0.0, out)
    chunks = [entry for message in out.peers[endpoint("c")] for entry in message.entries]
    assert [sum(len(e[2]) for e in chunk.stored) for chunk in chunks] == [8, 8, 4]
    assert all(chunk.retention == Retention(50, 60.0) for chunk in chunks)
    assert [e[1] for chunk in chunks for e in chunk.stored] == [1, 2, 3, 4, 5]


def test_new_entries_go_on_to_the_rest_of_the_placement_never_back_to_the_sender() -> None:
    part = make_handoff("a")  # the owner: placement [a, b]
    topic = placed("abc", "ab")
    part.sequencer.stamp(topic, 0.0)
    handoff = Handoff([HandoffEntry(topic, None, [[5, 1, b"x", 0.0]])])
    out = Outbox()
    part.on_handoff("c", handoff, 1.0, out)
    assert out.peers == {endpoint("b"): [handoff]}
    assert part.sequencer.epoch(topic) == 0  # the next publish starts a new epoch
    again = Outbox()
    part.on_handoff("c", handoff, 1.0, again)  # nothing new: nothing travels on
    assert not again.peers
    assert [str(e) for e in again.log] == ["handoff_received by=c topics=1 new=0"]


def test_a_retention_handed_over_after_a_publish_is_replicated_at_once() -> None:
    """The cluster keeps no history by default; the topic has its own retention, which
    its new owner learns from a handoff, after it sequenced a first publish."""
    part = make_handoff("a", default=0)
    ring, history, replication = part.ring, part.history, part.replication
    interest = InterestCache("a", ring, Overlay("a"), endpoint, history, replication)
    owner = Owner(
        "a", ring, part.sequencer, history, replication, interest, Routes(endpoint),
        FlowControl(), dict.fromkeys(COUNTERS, 0),
    )  # fmt: skip
    topic = placed("abc", "ab")
    out = Outbox()
    owner.sequence(topic, b"early", None, LEVEL_OWNER, 0.0, out)
    assert out.peers == {}  # no retention: nothing kept, nothing copied
    part.on_handoff("c", Handoff([HandoffEntry(topic, Retention(10, 60.0), [])]), 0.1, out)
    assert history.retention(topic) == Retention(10, 60.0)
    out = Outbox()
    owner.sequence(topic, b"late", None, LEVEL_OWNER, 0.2, out)
    assert [type(message) for message in out.peers.get(endpoint("b"), [])] == [Store]


# ---------------------------------------------------------------- owner changes


def start_skewed(net: SimNet, node: str, seconds: float) -> None:
    """Start ``node`` with a clock ``seconds`` ahead: its epochs are that much larger."""
    net.add(node)
    net.nodes[node].incarnation = WALL_START_NS + int(seconds * 1e9)
    net.restart(node)


def test_the_replica_takes_over_with_the_history_and_larger_epochs() -> None:
    net = SimNet()
    start_skewed(net, "a", 1000.0)  # the first owner's epochs are far ahead of b's clock
    net.add("b", ["a"])
    net.add("c", ["a"])
    net.settle()
    topic = placed("abc", "ab")
    net.subscribe("c", exact_group(topic))
    net.run_until_quiet()
    refs = [publish(net, "c", topic, b"old%d" % i) for i in range(4)]
    net.run_until_quiet()
    assert [net.acks("c")[ref][0] for ref in refs] == [1, 2, 3, 4]
    old = stored(net, "a", topic)
    (old_epoch,) = {epoch for epoch, _, _ in old}
    assert stored(net, "b", topic) == old

    net.crash("a")
    net.settle()
    assert net.core("c").ring.owner(topic) == "b"
    expected = [[old_epoch, i + 1, b"old%d" % i] for i in range(4)]
    for node in "bc":
        result = history(net, node, topic, after=[0, 0])
        assert (result["node"], result["entries"], result["more"]) == ("b", expected, False)
    assert stored(net, "c", topic) == old  # b handed it to its new replica, c

    # Without the history, b would have started an epoch below a's.
    b = net.core("b")
    assert Sequencer(b.incarnation // 1_000_000, b.started).stamp(topic, net.clock)[0] < old_epoch
    ref = publish(net, "c", topic, b"new")
    net.run_until_quiet()
    assert net.acks("c")[ref][0] == 1
    (new_epoch, seq) = net.stamps("c", topic)[-1]
    assert seq == 1 and new_epoch > old_epoch
    assert stored(net, "b", topic)[-1] == (new_epoch, 1, b"new")
    assert stored(net, "c", topic) == stored(net, "b", topic)


def test_a_joining_owner_receives_the_history_and_a_dropped_holder_forgets_it() -> None:
    net = cluster("ab")
    topic = placed("abc", "ca", then=("ab", "ab"))
    for i in range(3):
        publish(net, "b", topic, b"m%d" % i)
    net.run_until_quiet()
    old = stored(net, "a", topic)
    assert len(old) == 3 and stored(net, "b", topic) == old

    net.add("c", ["a"])
    net.settle()
    assert stored(net, "c", topic) == old
    assert stored(net, "a", topic) == old  # still a replica
    assert topic not in net.core("b").history.held()  # out of the placement: forgotten
    senders = {s.src for s, e in net.entries(HANDOFF) if s.dst == "c" and e[0] == topic}
    assert senders == {"a", "b"}  # both former holders sent it; c kept one copy each
    for node in "abc":
        result = history(net, node, topic, since=0)
        assert result["node"] == "c"
        assert [(e, s, p) for e, s, p in result["entries"]] == old

    ref = publish(net, "b", topic, b"after")
    net.run_until_quiet()
    assert net.acks("b")[ref][0] == 1
    epoch, seq, payload = stored(net, "c", topic)[-1]
    assert (seq, payload) == (1, b"after") and epoch > old[-1][0]
    assert stored(net, "a", topic)[-1] == (epoch, 1, b"after")
    assert stored(net, "b", topic) == []


# ---------------------------------------------------------------- netsplit


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lone=st.integers(1, 4), pair=st.integers(1, 4), via=st.sampled_from("bc"))
def test_a_healed_netsplit_merges_both_sides_history_at_the_owner(
    lone: int, pair: int, via: str
) -> None:
    net = cluster("abc")
    topic = placed("abc", "ab")
    for i in range(2):
        publish(net, "c", topic, b"before%d" % i)
    net.run_until_quiet()
    for other in "bc":
        net.cut("a", other)
    wait_for(net, lambda: net.views() == {"a": set(), "b": {"c"}, "c": {"b"}})
    net.run_until_quiet()
    lone_refs = [publish(net, "a", topic, b"lone%d" % i, LEVEL_OWNER) for i in range(lone)]
    net.run_until_quiet()
    net.advance(0.3)
    pair_refs = [publish(net, via, topic, b"pair%d" % i) for i in range(pair)]
    net.run_until_quiet()
    assert all(ref in net.acks("a") for ref in lone_refs)
    assert all(ref in net.acks(via) for ref in pair_refs)  # both sides sequenced

    net.heal()
    wait_for(net, net.converged)
    net.run_until_quiet()
    merged = stored(net, "a", topic)
    payloads = sorted(p for _, _, p in merged)
    assert payloads == sorted(
        [b"before%d" % i for i in range(2)]
        + [b"lone%d" % i for i in range(lone)]
        + [b"pair%d" % i for i in range(pair)]
    )
    stamps = [(e, s) for e, s, _ in merged]
    assert stamps == sorted(set(stamps))
    assert stored(net, "b", topic) == merged  # the replica got the owner's side too
    assert topic not in net.core("c").history.held()

    ref = publish(net, "c", topic, b"healed")
    net.run_until_quiet()
    assert net.acks("c")[ref][0] == 1  # a new epoch, at seq 1
    epoch, seq, payload = stored(net, "a", topic)[-1]
    assert payload == b"healed" and seq == 1
    assert epoch > max(e for e, _ in stamps)


# ---------------------------------------------------------------- expiry


def test_create_with_a_ttl_expires_history_at_owner_and_replica() -> None:
    net = cluster("ab")
    topic = placed("ab", "ab")
    net.request("b", "create", {"topic": topic, "history": 100, "ttl": 2})
    net.run_until_quiet()
    early = net.clock
    publish(net, "b", topic, b"early")
    net.run_until_quiet()
    net.advance(1.5)
    late = net.clock
    publish(net, "b", topic, b"late")
    net.run_until_quiet()

    def kept() -> list[list[bytes]]:
        return [[p for _, _, p in stored(net, node, topic)] for node in "ab"]

    assert kept() == [[b"early", b"late"]] * 2
    wait_for(net, lambda: kept() == [[b"late"]] * 2, step=0.01)
    assert early + 2.0 <= net.clock <= early + 3.3  # swept about once a second
    assert history(net, "b", topic, since=0)["entries"] == [[history_epoch(net, topic), 2, b"late"]]
    wait_for(net, lambda: kept() == [[], []], step=0.01)
    assert late + 2.0 <= net.clock <= late + 3.3
    assert history(net, "b", topic, since=0)["entries"] == []
