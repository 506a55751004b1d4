"""The raw PUB's filter copy: a topic is wanted exactly when some SUB filter matches it."""

from __future__ import annotations

import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from zdps.daemon.subscribers import SubscriberFilter

pytestmark = pytest.mark.timeout(60)


def test_exact_prefix_and_everything() -> None:
    subscribers = SubscriberFilter()
    assert not subscribers.wants("news")
    subscribers.update(b"news\x00", True)
    assert subscribers.wants("news") and not subscribers.wants("newsroom")
    subscribers.update(b"sport.", True)
    assert subscribers.wants("sport.tennis") and not subscribers.wants("sport")
    subscribers.update(b"news\x00", False)
    assert not subscribers.wants("news")
    subscribers.update(b"", True)
    assert subscribers.wants("anything")


def test_a_group_counts_its_subscriptions_and_an_unknown_unsubscribe_is_ignored() -> None:
    subscribers = SubscriberFilter()
    subscribers.update(b"t\x00", False)  # made before the node started
    subscribers.update(b"t\x00", True)
    subscribers.update(b"t\x00", True)
    subscribers.update(b"t\x00", False)
    assert subscribers.wants("t")
    subscribers.update(b"t\x00", False)
    assert not subscribers.wants("t")


GROUPS = st.sampled_from([b"", b"a", b"ab", b"a\x00", b"ab\x00", b"b", b"ba.", b"\x00zdps.sync.x"])
TOPICS = st.sampled_from(["a", "ab", "abc", "b", "ba.x", "ba"])


@settings(max_examples=60, deadline=None)
@given(changes=st.lists(st.tuples(GROUPS, st.booleans()), max_size=10), topics=st.lists(TOPICS))
def test_the_filter_agrees_with_a_real_xpub(changes: list, topics: list[str]) -> None:
    """After the same subscriptions, a topic is wanted exactly when libzmq's XPUB sends
    its message to some SUB (one SUB per subscription, so none is a duplicate). Each
    SUB also subscribes to an end marker no topic can match, sent last."""
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.setsockopt(zmq.XPUB_VERBOSER, 1)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    subscribers, live, subs = SubscriberFilter(), [], []
    try:
        for group, subscribed in changes:
            if subscribed:
                sub = ctx.socket(zmq.SUB)
                sub.setsockopt(zmq.LINGER, 0)
                sub.connect(f"tcp://127.0.0.1:{port}")
                end = b"\x01end%d" % len(subs)
                for wanted in (end, group):
                    sub.subscribe(wanted)
                    assert pub.poll(5000) and pub.recv() == b"\x01" + wanted
                subs.append((sub, end))
                live.append((group, sub))
                subscribers.update(group, True)
            elif any(g == group for g, _ in live):
                at = next(i for i, (g, _) in enumerate(live) if g == group)
                live.pop(at)[1].unsubscribe(group)
                assert pub.poll(5000) and pub.recv() == b"\x00" + group
                subscribers.update(group, False)
        for topic in topics:
            pub.send(topic.encode() + b"\x00")
        for _, end in subs:
            pub.send(end)
        received: set[str] = set()
        for sub, end in subs:
            while (frame := sub.recv() if sub.poll(5000) else end) != end:
                if not frame.startswith(b"\x01end"):  # another SUB's marker, to b""
                    received.add(frame[:-1].decode())
        assert {t for t in topics if subscribers.wants(t)} == received
    finally:
        for sub, _ in subs:
            sub.close(0)
        pub.close(0)
