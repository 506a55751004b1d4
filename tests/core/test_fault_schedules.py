"""Seeded random fault schedules on the simulated cluster, checked against invariants.

Each example runs the real protocol cores of 3-5 nodes over the simulated network and
clock through a random schedule of publishes (frames of batches of one or several
messages to one topic), subscriptions, crashes, restarts,
graceful leaves, partitions and heals. Then the network heals, every stopped node
comes back, and the invariants are checked:

* membership and the ring are identical on every node;
* every node's scope table equals the true local counts of the running nodes (no
  ghost membership, no lost one);
* within an epoch no node ever delivers a topic's seq twice or out of order;
* every publish made through a node that stayed up got exactly one answer (ack or
  nack), whichever batch it travelled in: an acknowledgement is never silently lost;
* after convergence a publish reaches every node with interest, once, and so does
  each message of a batch, in order with consecutive seqs.

Hypothesis picks the seeds; ``ZDPS_SIM_EXAMPLES`` sets how many schedules run (the
long mode: ``ZDPS_SIM_EXAMPLES=500 pytest tests/core/test_fault_schedules.py``).
"""

from __future__ import annotations

import os
import random
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.core.helpers import build
from tests.core.node_net import SimNet
from zdps.topics import exact_group, prefix_group
from zdps.wire import API_ACK, API_NACK, LEVEL_OWNER
from zdps.wire.api import publish_entry

pytestmark = pytest.mark.timeout(300)

EXAMPLES = int(os.environ.get("ZDPS_SIM_EXAMPLES", "40"))
TOPICS = ["orders", "orders.eu", "prices", "news.a", "news.b"]
GROUPS = [exact_group(t) for t in TOPICS] + [prefix_group("news."), prefix_group("orders")]


def fresh_refs(net: SimNet, count: int) -> list[int]:
    """``count`` consecutive fresh refs: a batch's."""
    refs = [net.ref() for _ in range(count)]
    assert refs == list(range(refs[0], refs[0] + count))
    return refs


def publish_frame(net: SimNet, node: str, rng: random.Random) -> list[int]:
    """A client of ``node`` sends one frame of 1-3 batches of 1-5 messages to one topic
    each; returns the refs of every message."""
    entries, refs = [], []
    for _ in range(rng.randint(1, 3)):
        batch = fresh_refs(net, rng.choice([1, 1, 2, 3, 5]))
        payloads = [b"m"] * len(batch)
        entries.append(publish_entry(batch[0], rng.choice(TOPICS), payloads, LEVEL_OWNER))
        refs += batch
    net.publish_batch(node, entries)
    return refs


def answers(net: SimNet, node: str) -> Counter:
    """How many times each ref got an ack or a nack from ``node`` (runs expanded)."""
    found: Counter = Counter()
    for kind, *fields in net.frames(node):
        if kind == API_ACK:
            found.update(ref + i for ref, _, _, _, n in fields[0] for i in range(n))
        elif kind == API_NACK:
            found.update(ref + i for ref, _, _, n in fields[0] for i in range(n))
    return found


def run_schedule(net: SimNet, names: list[str], rng: random.Random, steps: int) -> dict:
    """Apply ``steps`` random operations; returns bookkeeping for the invariants."""
    refs: dict[int, str] = {}  # publish ref -> entry node
    stopped: set[str] = set()
    for _ in range(steps):
        running = [n for n in names if n not in stopped]
        op = rng.choices(
            ["publish", "subscribe", "unsubscribe", "crash", "restart", "leave", "cut", "heal"],
            weights=[30, 10, 5, 3, 4, 2, 4, 4],
        )[0]
        node = rng.choice(running)
        if op == "publish":
            for _ in range(rng.randint(1, 3)):
                refs.update(dict.fromkeys(publish_frame(net, node, rng), node))
        elif op == "subscribe":
            net.subscribe(node, rng.choice(GROUPS))
        elif op == "unsubscribe":
            local = sorted(net.core(node).overlay.which_local_groups())
            if local:
                net.unsubscribe(node, rng.choice(local))
        elif op in ("crash", "leave") and len(running) > 2:
            (net.crash if op == "crash" else net.leave)(node)
            stopped.add(node)
            for ref in [r for r, entry in refs.items() if entry == node]:
                del refs[ref]  # its clients went with it
        elif op == "restart" and stopped:
            back = rng.choice(sorted(stopped))
            net.restart(back, [rng.choice(running)])
            stopped.discard(back)
        elif op == "cut":
            a, b = rng.sample(names, 2)
            net.cut(a, b)
        elif op == "heal":
            net.heal()
        net.advance(rng.choice([0.01, 0.1, 0.5, 2.5]))
    for node in sorted(stopped):
        net.restart(node, [next(n for n in names if n not in stopped)])
    net.heal()
    return {"refs": refs}


def assert_invariants(net: SimNet, names: list[str], book: dict) -> None:
    net.settle(timeout=30.0)
    net.advance(12.0)  # past the ack timeout: every pending publish is answered
    net.run_until_quiet()
    # Membership and ring identical everywhere.
    assert net.converged(), net.views()
    # Scope tables equal the true local counts: no ghosts, nothing lost.
    truth: dict[bytes, dict[str, int]] = {}
    for node in names:
        for group, count in net.core(node).overlay.local_counts().items():
            truth.setdefault(group, {})[node] = count
    for node in names:
        overlay = net.core(node).overlay
        assert {g: overlay.members(g) for g in overlay.which_groups()} == truth, node
    # Within an epoch: no duplicate, no reordering, at every node, for every topic.
    for node in names:
        for topic in TOPICS:
            last: dict[int, int] = {}
            for epoch, seq in net.stamps(node, topic):
                assert seq > last.get(epoch, 0), (node, topic, epoch, seq)
                last[epoch] = seq
    # Every publish through a node that stayed up got exactly one answer.
    for node in set(book["refs"].values()):
        answered = answers(net, node)
        mine = [r for r, entry in book["refs"].items() if entry == node]
        assert all(answered[r] == 1 for r in mine), node
    # After convergence a publish, and each message of a batch, reaches every node with
    # interest exactly once, a batch in order with consecutive seqs.
    for topic in TOPICS:
        before = {n: len(net.received(n, topic)) for n in names}
        net.publish(names[0], topic, b"final")
        batch = [b"final.%d" % i for i in range(3)]
        ref = fresh_refs(net, len(batch))[0]
        net.publish_batch(names[0], [publish_entry(ref, topic, batch, LEVEL_OWNER)])
        net.run_until_quiet()
        reach = net.core(names[0]).overlay.reach(topic.encode())
        for node in names:
            got = net.received(node, topic)[before[node] :]
            if node not in reach:
                assert got == [], (topic, node, reach)
                continue
            assert [d.payload for d in got] == [b"final", *batch], (topic, node, reach)
            stamps = [(d.header["epoch"], d.header["seq"]) for d in got[1:]]
            assert stamps == [(stamps[0][0], stamps[0][1] + i) for i in range(3)], stamps


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(5, 40))
def test_random_fault_schedules_keep_the_invariants(seed: int, steps: int) -> None:
    rng = random.Random(seed)
    net, names = build(rng)
    book = run_schedule(net, names, rng, steps)
    assert_invariants(net, names, book)
