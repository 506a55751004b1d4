"""Handoff (zdps/core/handoff.py): the history a node holds follows the ring.

* Ring changes hand the history to the nodes newly in a topic's placement, in
  ``handoff`` messages of at most ``HANDOFF_BYTES`` of payload (whole batches as
  stored: ``[epoch, seq, n, batch, age]``; a batch is never split); a holder no longer
  in it forgets it. A new owner's epochs stay above every stored epoch.
* A receiver that merged messages it did not have passes the topic on to the rest of
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
from zdps.wire import HANDOFF, LEVEL_OWNER, LEVEL_REPLICATED
from zdps.wire.api import publish_entry
from zdps.wire.batches import pack_batch
from zdps.wire.data import Handoff, HandoffEntry, Retention, Store

pytestmark = pytest.mark.timeout(120)


def endpoint(node: str) -> str:
    return f"inproc://{node}"


def make_handoff(
    node: str = "a", nodes: str = "abc", default: int = 100, bad_input=None
) -> HistoryHandoff:
    ring = HashRing(nodes)
    history = HistoryStore(Retention(default, 60.0))
    sequencer = Sequencer(1_000, 0.0, history.last_epoch)
    replication = Replication(node, ring, history, 1)
    report = bad_input if bad_input is not None else _unexpected_bad_input
    absorbed: list[str] = []  # topics whose consumers heard of new merged messages
    return HistoryHandoff(
        node, ring, endpoint, history, replication, sequencer, report, absorbed.append
    )


def _unexpected_bad_input(code: str, message: str) -> None:
    raise AssertionError(f"unexpected bad input {code}: {message}")


def put(history: HistoryStore, topic: str, epoch: int, seq: int, data: list[bytes]) -> int:
    """Store the batch of ``data`` from ``(epoch, seq)`` on, at time 0."""
    return history.store(topic, epoch, seq, len(data), pack_batch(data), 0.0)


def publish_many(net: SimNet, node: str, topic: str, payloads: list[bytes], level: int) -> int:
    """A client of ``node`` publishes ``payloads`` as one batch; returns its first ref."""
    refs = [net.ref() for _ in payloads]  # consecutive
    net.publish_batch(node, [publish_entry(refs[0], topic, payloads, level)])
    return refs[0]


def history_epoch(net: SimNet, topic: str) -> int:
    """The epoch the topic's owner is sequencing it in."""
    return net.core(net.owner(topic)).sequencer.epoch(topic)


# ---------------------------------------------------------------- HistoryHandoff


def test_a_ring_change_hands_the_history_to_the_new_placement_and_drops_what_left() -> None:
    part = make_handoff("a")
    stays = placed("abc", "ca", then=("ab", "ab"))
    leaves = placed("abc", "bc", then=("ab", "ba"))
    for topic in (stays, leaves):
        put(part.history, topic, 5, 1, [topic.encode(), b"second", b"third"])
    out = Outbox()
    part.ring_changed(frozenset("ab"), 1.0, out)
    sent = sorted(entry.topic for message in out.peers[endpoint("c")] for entry in message.entries)
    assert set(out.peers) == {endpoint("c")} and sent == sorted([stays, leaves])
    assert part.history.held() == [stays]
    # The operator sees how many messages went (two batches of three).
    assert [str(e) for e in out.log] == ["handoff_sent to=c topics=2 entries=6"]


def test_history_goes_in_chunks_of_at_most_handoff_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    size = len(pack_batch([b"0001"]))  # the bytes of one stored batch of one message
    monkeypatch.setattr(handoff_module, "HANDOFF_BYTES", 2 * size + 1)
    part = make_handoff("a")
    topic = placed("abc", "ab")
    part.history.configure(topic, Retention(50, 60.0), 0.0)
    for seq in range(1, 6):
        put(part.history, topic, 5, seq, [b"%04d" % seq])
    out = Outbox()
    assert part.hand_over("c", topic, 0.0, out) == 5
    chunks = [entry for message in out.peers[endpoint("c")] for entry in message.entries]
    assert [sum(len(e[3]) for e in chunk.stored) for chunk in chunks] == [2 * size, 2 * size, size]
    assert all(chunk.retention == Retention(50, 60.0) for chunk in chunks)
    assert [e[1] for chunk in chunks for e in chunk.stored] == [1, 2, 3, 4, 5]


def test_batches_go_whole_and_the_count_is_of_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    small = [b"%d" % i for i in range(4)]
    large = [b"x" * 20, b"y" * 20]
    limit = 2 * len(pack_batch(small))  # two small batches fit
    assert len(pack_batch(large)) > limit  # a large one is over the limit: alone
    monkeypatch.setattr(handoff_module, "HANDOFF_BYTES", limit)
    part = make_handoff("a")
    topic = placed("abc", "ab")
    for seq, data in ((1, small), (5, small), (9, large), (11, small)):
        put(part.history, topic, 5, seq, data)
    out = Outbox()
    assert part.hand_over("c", topic, 0.0, out) == 14
    chunks = [entry.stored for message in out.peers[endpoint("c")] for entry in message.entries]
    assert [[(e[1], e[2]) for e in chunk] for chunk in chunks] == [
        [(1, 4), (5, 4)],
        [(9, 2)],
        [(11, 4)],
    ]
    assert [e[3] for chunk in chunks for e in chunk] == [
        pack_batch(small), pack_batch(small), pack_batch(large), pack_batch(small),
    ]  # fmt: skip


def test_a_handoff_after_a_partial_trim_sends_only_the_messages_held() -> None:
    part = make_handoff("a", default=5)
    topic = placed("abc", "ab")
    put(part.history, topic, 5, 1, [b"1", b"2", b"3", b"4"])
    put(part.history, topic, 5, 5, [b"5", b"6", b"7"])  # 1 and 2 trimmed
    out = Outbox()
    assert part.hand_over("c", topic, 0.0, out) == 5
    (message,) = out.peers[endpoint("c")]
    (entry,) = message.entries
    assert [(e[1], e[2], e[3]) for e in entry.stored] == [
        (3, 2, pack_batch([b"3", b"4"])),
        (5, 3, pack_batch([b"5", b"6", b"7"])),
    ]


def test_new_entries_go_on_to_the_rest_of_the_placement_never_back_to_the_sender() -> None:
    part = make_handoff("a")  # the owner: placement [a, b]
    topic = placed("abc", "ab")
    part.sequencer.stamp(topic, 0.0)
    handoff = Handoff([HandoffEntry(topic, None, [[5, 1, 1, pack_batch([b"x"]), 0.0]])])
    out = Outbox()
    part.on_handoff("c", handoff, 1.0, out)
    assert out.peers == {endpoint("b"): [handoff]}
    assert part.sequencer.epoch(topic) == 0  # the next publish starts a new epoch
    assert part.absorbed.__self__ == [topic]  # its consumers flag what they hand out of it
    again = Outbox()
    part.on_handoff("c", handoff, 1.0, again)  # nothing new: nothing travels on
    assert not again.peers and part.absorbed.__self__ == [topic]
    assert [str(e) for e in again.log] == ["handoff_received by=c topics=1 new=0"]


def test_a_handoff_batch_overlapping_held_messages_counts_and_passes_on_the_missing_ones() -> None:
    part = make_handoff("a")  # the owner: placement [a, b]
    topic = placed("abc", "ab")
    put(part.history, topic, 5, 2, [b"mine2", b"mine3"])
    part.sequencer.stamp(topic, 0.0)
    theirs = pack_batch([b"theirs%d" % s for s in range(1, 6)])
    out = Outbox()
    part.on_handoff("c", Handoff([HandoffEntry(topic, None, [[5, 1, 5, theirs, 0.0]])]), 1.0, out)
    assert [str(e) for e in out.log] == ["handoff_received by=c topics=1 new=3"]
    assert [p for _, _, p in part.history.fetch(topic, 0, 0, 10)] == [
        b"theirs1", b"mine2", b"mine3", b"theirs4", b"theirs5",
    ]  # fmt: skip
    (message,) = out.peers[endpoint("b")]  # the merged history goes on, not back to c
    assert set(out.peers) == {endpoint("b")}
    sent = [m for entry in message.entries for m in entry.stored]
    assert sum(n for _, _, n, _, _ in sent) == 5
    assert part.sequencer.epoch(topic) == 0
    again = Outbox()
    held = [[5, 2, 4, pack_batch([b"x"] * 4), 0.0]]  # seqs 2..5: all held by now
    part.on_handoff("c", Handoff([HandoffEntry(topic, None, held)]), 1.0, again)
    assert not again.peers  # all held already
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
    owner.sequence(topic, 1, pack_batch([b"early"]), None, LEVEL_OWNER, 0.0, out)
    assert out.peers == {}  # no retention: nothing kept, nothing copied
    part.on_handoff("c", Handoff([HandoffEntry(topic, Retention(10, 60.0), [])]), 0.1, out)
    assert history.retention(topic) == Retention(10, 60.0)
    out = Outbox()
    owner.sequence(topic, 2, pack_batch([b"late", b"later"]), None, LEVEL_OWNER, 0.2, out)
    # b delivers to nobody and nothing waits on the copy: it may be held (copy_pacing.py)
    assert [type(message) for message in out.lazy.get(endpoint("b"), [])] == [Store]
    (copy,) = out.lazy[endpoint("b")][0].entries
    assert (copy[3], copy[4]) == (2, pack_batch([b"late", b"later"]))  # one copy of the batch


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


def test_the_replica_takes_over_a_batch_as_one_entry_and_hands_it_on_whole() -> None:
    net = cluster("abc")
    topic = placed("abc", "ab")
    payloads = [b"m%d" % i for i in range(5)]
    first = publish_many(net, "c", topic, payloads, LEVEL_REPLICATED)
    net.run_until_quiet()
    assert [net.acks("c")[first + i][0] for i in range(5)] == [1, 2, 3, 4, 5]
    old = stored(net, "a", topic)
    epoch = old[0][0]
    assert old == [(epoch, i + 1, p) for i, p in enumerate(payloads)]
    assert stored(net, "b", topic) == old

    def batches(node: str) -> list[tuple[int, int, int]]:
        return [(e.epoch, e.seq, e.n) for e in net.core(node).history.topics[topic].entries]

    assert batches("a") == batches("b") == [(epoch, 1, 5)]  # one entry, as sequenced

    net.crash("a")
    net.settle()
    assert net.core("c").ring.owner(topic) == "b"
    expected = [[epoch, i + 1, p] for i, p in enumerate(payloads)]
    assert history(net, "c", topic, after=[0, 0], limit=3)["entries"] == expected[:3]
    assert history(net, "c", topic, after=[epoch, 3])["entries"] == expected[3:]
    assert stored(net, "c", topic) == old  # b handed it to its new replica, c
    assert batches("c") == [(epoch, 1, 5)]  # still one batch


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
@given(
    lone=st.integers(1, 4),
    pair=st.integers(1, 4),
    via=st.sampled_from("bc"),
    batched=st.booleans(),
)
def test_a_healed_netsplit_merges_both_sides_history_at_the_owner(
    lone: int, pair: int, via: str, batched: bool
) -> None:
    """Each side publishes its messages one by one, or (``batched``) as one batch."""

    def side(node: str, name: bytes, count: int, level: int) -> list[int]:
        payloads = [b"%s%d" % (name, i) for i in range(count)]
        if batched:
            first = publish_many(net, node, topic, payloads, level)
            return list(range(first, first + count))
        return [publish(net, node, topic, payload, level) for payload in payloads]

    net = cluster("abc")
    topic = placed("abc", "ab")
    for i in range(2):
        publish(net, "c", topic, b"before%d" % i)
    net.run_until_quiet()
    for other in "bc":
        net.cut("a", other)
    wait_for(net, lambda: net.views() == {"a": set(), "b": {"c"}, "c": {"b"}})
    net.run_until_quiet()
    lone_refs = side("a", b"lone", lone, LEVEL_OWNER)
    net.run_until_quiet()
    net.advance(0.3)
    pair_refs = side(via, b"pair", pair, LEVEL_REPLICATED)
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


def test_a_handoff_batch_that_does_not_unpack_costs_only_its_topic() -> None:
    """A faulty peer's blob is counted as bad input; the other topics are merged."""
    reports: list[tuple[str, str]] = []
    handoff = make_handoff(bad_input=lambda code, why: reports.append((code, why)))
    put(handoff.history, "t", 5, 3, [b"held"])  # an older batch must be merged, unpacked
    entries = [
        HandoffEntry("t", None, [[5, 1, 2, b"not a batch", 0.0]]),
        HandoffEntry("u", None, [[5, 1, 1, pack_batch([b"u1"]), 0.0]]),
    ]
    handoff.on_handoff("b", Handoff(entries), 0.0, Outbox())
    assert [code for code, _ in reports] == ["malformed"] and "'t' from b" in reports[0][1]
    assert handoff.history.fetch("t", 0, 0, 10) == [(5, 3, b"held")]
    assert handoff.history.fetch("u", 0, 0, 10) == [(5, 1, b"u1")]
