"""Random delivery schedules of publishes and deletes across the cluster, checked against
the routing rules (routing.py, sequencing.py, interest.py, acks.py together).

Publishes (frames of 1-3 entries, each a batch of 1-3 messages to one topic) and
deletes enter random nodes of a 4-node cluster while hypothesis picks which links
deliver a frame next (FIFO per link). At the end:

* every interested node saw the same total order of each topic, nothing lost and
  nothing duplicated, and nodes without interest saw nothing;
* seqs are gapless from 1 within each epoch, each ``closed`` ends one, and epochs only
  grow;
* each entry node's publishes keep their order, a batch's messages get consecutive
  seqs of one epoch, and each ack names the seq its message was delivered with and
  the interested nodes, once per ref;
* nothing was refused, nothing is left waiting, nothing was bad input.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.core.helpers import cluster, matches
from tests.core.node_net import SimNet
from zdps.topics import exact_group, prefix_group
from zdps.wire import API_ACK, LEVEL_OWNER
from zdps.wire.api import publish_entry

pytestmark = pytest.mark.timeout(60)

NAMES = ["a", "b", "c", "d"]
TOPICS = ["t.1", "t.2", "u"]
SUBSCRIPTIONS = {
    "a": [exact_group("t.2")],
    "b": [exact_group("t.1")],
    "c": [prefix_group("t.")],
    "d": [exact_group("u"), prefix_group(""), exact_group("t.1")],
}
INTERESTED = {t: [n for n in NAMES if any(matches(g, t) for g in SUBSCRIPTIONS[n])] for t in TOPICS}


def refs(net: SimNet, count: int) -> int:
    """``count`` consecutive fresh refs; the first (a batch's ref)."""
    first = net.ref()
    assert [net.ref() for _ in range(count - 1)] == list(range(first + 1, first + count))
    return first


def acked_refs(net: SimNet, node: str) -> list[int]:
    """Every ref an ack sent to the client of ``node`` covers, as often as covered."""
    return [
        ref + i
        for kind, *fields in net.frames(node)
        if kind == API_ACK
        for ref, _seq, _nodes, _subscribers, n in fields[0]
        for i in range(n)
    ]


@settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    data=st.data(),
    ops=st.lists(
        st.tuples(
            st.sampled_from(NAMES),
            st.sampled_from(["pub"] * 6 + ["delete"]),
            st.lists(st.tuples(st.sampled_from(TOPICS), st.integers(1, 3)), min_size=1, max_size=3),
            st.integers(0, 4),
        ),
        min_size=1,
        max_size=25,
    ),
)
def test_random_interleavings_keep_seq_gapless_and_order_identical(data, ops) -> None:
    net = cluster(NAMES)
    for node, groups in SUBSCRIPTIONS.items():
        for group in groups:
            net.subscribe(node, group)
    net.run_until_quiet()
    issued = []  # (entry, topic, kind, ref, payload), one per message
    batches = []  # the payloads of each batch published
    for i, (entry, kind, topics, moves) in enumerate(ops):
        if kind == "pub":  # one client frame with 1-3 entries, each a batch of 1-3
            frame = []
            for j, (topic, count) in enumerate(topics):
                first = refs(net, count)
                payloads = [f"{i}.{j}.{k}".encode() for k in range(count)]
                frame.append(publish_entry(first, topic, payloads, LEVEL_OWNER))
                issued += [(entry, topic, kind, first + k, p) for k, p in enumerate(payloads)]
                batches.append(payloads)
            net.publish_batch(entry, frame)
        else:
            ref = net.request(entry, "delete", {"topic": topics[0][0]})
            issued.append((entry, topics[0][0], kind, ref, b""))
        for _ in range(moves):  # deliver a few frames on links of hypothesis's choosing
            links = net.in_flight()
            if not links:
                break
            net.deliver(data.draw(st.sampled_from(links)))
    net.run_until_quiet()

    for topic in TOPICS:
        streams = {
            node: [
                (d.header["epoch"], d.header["seq"], d.header.get("type"), d.payload)
                for d in net.received(node, topic)
            ]
            for node in NAMES
        }
        interested = INTERESTED[topic]
        for node in NAMES:
            if node not in interested:
                assert streams[node] == []
        stream = streams[interested[0]]
        assert all(streams[n] == stream for n in interested)  # one total order
        mine = [op for op in issued if op[1] == topic]
        assert len(stream) == len(mine)  # nothing lost, nothing duplicated
        # Epochs: gapless seqs from 1, each closed ends one, and epochs only grow.
        seq, epoch = 0, None
        for e, s, kind, _ in stream:
            if epoch != e:
                assert seq == 0 and (epoch is None or e > epoch)
                epoch = e
            assert s == seq + 1
            seq = 0 if kind == "closed" else s
        # Each entry node's operations keep their order; acks name the right seq.
        position = {p: i for i, (_, _, kind, p) in enumerate(stream) if kind is None}
        for payloads in batches:  # a batch: consecutive seqs of one epoch
            if payloads[0] in position:
                got = [stream[position[p]][:2] for p in payloads]
                assert got == [(got[0][0], got[0][1] + k) for k in range(len(payloads))]
        for entry in NAMES:
            pubs = [op for op in mine if op[0] == entry and op[2] == "pub"]
            assert [position[p] for *_, p in pubs] == sorted(position[p] for *_, p in pubs)
            for _, _, _, ref, payload in pubs:
                ack = net.acks(entry)[ref]
                assert ack[0] == stream[position[payload]][1]
                assert ack[1] == len(interested)
    for node in NAMES:  # nothing was refused, nothing is left waiting, each ref acked once
        mine = sorted(op[3] for op in issued if op[0] == node)  # deletes are acked too
        assert sorted(acked_refs(net, node)) == mine
        assert net.nacks(node) == {}
        assert net.core(node).pending == 0
        assert net.core(node).errors == {}
