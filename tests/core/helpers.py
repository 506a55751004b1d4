"""Helpers shared by the tests of tests/core: clusters, topics placed on purpose, messages
as a node receives them, publishes and history reads.

Only what more than one test file uses lives here; a helper of one file stays in it.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.core.node_net import SimNet, mesh
from zdps.core.ring import HashRing
from zdps.core.tunables import CoreConfig
from zdps.wire import HELLO, LEVEL_REPLICATED, probes
from zdps.wire.api import publish_entry
from zdps.wire.messages import decode_message

MAX_PAYLOAD = 1024  # small, so that a test can exceed it cheaply
CONFIG = CoreConfig(max_payload=MAX_PAYLOAD)
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def cluster(names: str | list[str], config: CoreConfig = CONFIG) -> SimNet:
    """A settled full mesh of ``names`` (each joined through the first)."""
    return mesh(names, config)


def build(rng: random.Random) -> tuple[SimNet, list[str]]:
    """A settled cluster of 3-5 nodes ``n0``... joined through random seeds, at a random
    latency: the start of every seeded fault schedule."""
    names = [f"n{i}" for i in range(rng.randint(3, 5))]
    net = SimNet(latency=rng.choice([0.0, 0.0005, 0.002]))
    net.add(names[0])
    for name in names[1:]:
        net.add(name, [rng.choice(names[: names.index(name)])])
    net.settle()
    return net, names


# ---------------------------------------------------------------- topics


def topic_owned_by(owner: str, nodes, prefix: str = "t", among=None) -> str:
    """The first ``<prefix><i>`` that ``owner`` owns on a ring of ``nodes``.

    With ``among=(subset, other_owner)`` the topic must also be owned by
    ``other_owner`` on a ring of ``subset``.
    """
    ring = HashRing(nodes)
    for i in range(10_000):
        topic = f"{prefix}{i}"
        if ring.owner(topic) != owner:
            continue
        if among is None or HashRing(among[0]).owner(topic) == among[1]:
            return topic
    raise AssertionError("no such topic")


def placed(nodes: str, placement: str, prefix: str = "t", then=None) -> str:
    """The first ``<prefix><i>`` whose owner and replicas on a ring of ``nodes`` are
    ``placement``, in order; with ``then=(nodes2, placement2)`` also that on ``nodes2``."""
    for i in range(50_000):
        topic = f"{prefix}{i}"
        if HashRing(nodes).successors(topic, len(placement)) != list(placement):
            continue
        if then is None or HashRing(then[0]).successors(topic, len(then[1])) == list(then[1]):
            return topic
    raise AssertionError("no such topic")


def matches(group: bytes, topic: str) -> bool:
    """Whether a subscription ``group`` (exact or prefix) covers ``topic``."""
    if group.endswith(b"\x00"):
        return group == topic.encode() + b"\x00"
    return topic.encode().startswith(group)


# ---------------------------------------------------------------- messages as they arrive


def hello(node: str, peers: dict | None = None, reply: bool = True, dialed: str = "inproc://a"):
    """The ``hello`` that ``node`` (at ``inproc://<node>``) sends, decoded as it arrives."""
    body = {"advertise": f"inproc://{node}", "peers": peers or {}, "dialed": dialed, "reply": reply}
    return decode_message([HELLO, body])


def verdict(kind: str, node: str, incarnation: int = 1, version: int = 0) -> probes.Verdict:
    """A detector verdict (suspect, alive, dead) about ``node``, decoded as it arrives."""
    return decode_message([kind, {"node": node, "inc": incarnation, "ver": version}])


# ---------------------------------------------------------------- publishing and history


def publish(net: SimNet, node: str, topic: str, payload: bytes, level: int = LEVEL_REPLICATED):
    """A client of ``node`` publishes at ack ``level``; returns the ref."""
    ref = net.ref()
    net.publish_batch(node, [publish_entry(ref, topic, [payload], level)])
    return ref


def stored(net: SimNet, node: str, topic: str) -> list[tuple[int, int, bytes]]:
    """``(epoch, seq, payload)`` of every message ``node`` holds of ``topic``'s history."""
    return net.core(node).history.fetch(topic, 0, 0, 1_000_000)


def history(net: SimNet, node: str, topic: str, **args) -> dict:
    """A client of ``node`` asks for ``topic``'s history; the (successful) result."""
    ref = net.request(node, "history", {"topic": topic, **args})
    net.run_until_quiet()
    ok, result = net.replies(node)[ref]
    assert ok, result
    return result


def peer_events(
    kinds: list[str], nodes: str, numbers: tuple[int, int], steps: list[float], most: int
) -> st.SearchStrategy:
    """Lists of ``(kind, node, other node, number, seconds since the last event)``: what
    the peer-table properties feed a core."""
    event = st.tuples(
        st.sampled_from(kinds),
        st.sampled_from(nodes),
        st.sampled_from(nodes),
        st.integers(*numbers),
        st.sampled_from(steps),
    )
    return st.lists(event, max_size=most)
