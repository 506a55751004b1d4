"""Per-client topic permissions (zdps/core/permissions.py): allow and deny prefixes,
deny wins, a prefix subscription only when every topic it matches is allowed; and the
client API refuses what a client may not do with ``forbidden``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zdps.core.node import NodeCore
from zdps.core.permissions import Permissions
from zdps.wire import encode_api
from zdps.wire.api import (
    Delete,
    Drain,
    Members,
    Ready,
    Status,
    encode_publish,
    encode_request,
    publish_entry,
)
from zdps.wire.consumers import API_CONSUMER_ACK, Consume, ConsumerCreate

pytestmark = pytest.mark.timeout(60)

RULES = {
    "alice": {"publish": ["news."], "subscribe": ["news."], "deny_subscribe": ["news.secret"]},
    "*": {"subscribe": ["public."]},
}


def test_allow_and_deny_prefixes_with_deny_winning() -> None:
    rules = Permissions.parse(RULES)
    assert rules.may_publish("alice", "news.a") and not rules.may_publish("alice", "sport")
    assert rules.may_subscribe("alice", b"news.a\x00")
    assert not rules.may_subscribe("alice", b"news.secret.x\x00")
    assert rules.may_subscribe("alice", b"news.open.")  # a prefix clear of every deny
    assert not rules.may_subscribe("alice", b"news.")  # would match news.secret
    assert not rules.may_subscribe("alice", b"new")  # would match newsroom too
    # Everyone else: the "*" rule; nobody without any rule at all is restricted.
    assert rules.may_subscribe("bob", b"public.x\x00") and not rules.may_publish("bob", "public.x")
    assert Permissions.parse({"alice": {}}).may_publish("bob", "anything")
    assert not Permissions.parse({"alice": {}}).may_publish("alice", "anything")


@pytest.mark.parametrize(
    ("table", "said"),
    [
        ({"alice": ["news."]}, "must be a table"),
        ({"alice": {"publsh": ["x"]}}, "unknown keys ['publsh']"),
        ({"alice": {"publish": "news."}}, "publish must be a list of text"),
        ({"alice": {"subscribe": [1]}}, "subscribe must be a list of text"),
        ({"alice": {"drain": "yes"}}, "drain must be true or false"),
    ],
)
def test_a_bad_permissions_table_says_what_is_wrong(table, said) -> None:
    with pytest.raises(ValueError, match=said.replace("[", r"\[").replace("]", r"\]")):
        Permissions.parse(table)


prefixes = st.lists(st.text("ab.", max_size=3), max_size=3)


@given(prefixes, prefixes, st.text("ab.", max_size=3), st.text("ab.", min_size=1, max_size=5))
def test_an_allowed_prefix_allows_every_topic_it_matches(allow, deny, prefix, rest) -> None:
    rules = Permissions.parse({"c": {"subscribe": allow, "deny_subscribe": deny}})
    if rules.may_subscribe("c", prefix.encode()):
        assert rules.may_subscribe("c", (prefix + rest).encode() + b"\x00")


def node_with_rules() -> NodeCore:
    core = NodeCore("a", 1, "default", "tcp://127.0.0.1:1", [], 0.0)
    core.clients.permissions = Permissions.parse(RULES)
    return core


def test_the_api_refuses_what_a_client_may_not_do_and_counts_it() -> None:
    core = node_with_rules()
    entries = [publish_entry(1, "news.a", [b"ok"], 1), publish_entry(2, "sport", [b"no"], 1)]
    core.on_client_frame(b"A", encode_publish(entries), 0.1, "alice")
    for ref, op in ((3, Delete("sport")), (4, Members("news.secret.x")), (5, Status())):
        core.on_client_frame(b"A", encode_request(ref, op), 0.1, "alice")
    core.on_client_frame(
        b"A", encode_request(6, Ready("t", [b"news.", b"news.a\x00"])), 0.1, "alice"
    )
    answers = core.take(0.1).clients[b"A"]
    acks = [a for a in answers if a[0] == "ack"]
    nacks = [a for a in answers if a[0] == "nack"]
    replies = {a[1]: a[2] for a in answers if a[0] == "rep"}
    assert acks[0][1][0][0] == 1 and nacks[0][1][0][:2] == [2, "forbidden"]
    assert replies[3] is False and replies[4] is False and replies[6] is False
    assert replies[5] is not False
    assert core.errors["forbidden"] == 4 and core.counters["published"] == 1


def test_only_a_rule_with_drain_may_drain_a_node_and_a_draining_node_refuses_publishes() -> None:
    rules = Permissions.parse({"ops": {"drain": True}, "*": {"publish": [""]}})
    assert rules.may_drain("ops") and not rules.may_drain("alice")
    assert Permissions.parse({}).may_drain(None)  # no rules: anything goes
    core = node_with_rules()
    core.clients.permissions = rules
    core.on_client_frame(b"A", encode_request(1, Drain()), 0.1, "alice")
    assert core.take(0.1).clients[b"A"][0][:3] == ["rep", 1, False] and not core.drain.active
    core.on_client_frame(b"O", encode_request(2, Drain(5.0)), 0.2, "ops")
    assert core.drain.active and core.drain.deadline == 5.2
    core.on_client_frame(b"A", encode_publish([publish_entry(3, "t", [b"x"], 1)]), 0.3, "alice")
    (nack,) = core.take(0.3).clients[b"A"]
    assert nack[0] == "nack" and nack[1][0][:2] == [3, "draining"]
    assert core.drained(0.4)  # alone: nothing to hand over
    assert core.take(0.4).clients[b"O"][0][:3] == ["rep", 2, True]


def test_consumer_ops_and_verdicts_need_the_right_to_subscribe() -> None:
    core = node_with_rules()
    core.on_client_frame(b"A", encode_request(1, Consume("sport", "w")), 0.1, "alice")
    core.on_client_frame(b"A", encode_request(2, ConsumerCreate("sport", "w")), 0.1, "alice")
    core.on_client_frame(b"A", encode_request(3, ConsumerCreate("news.a", "w")), 0.1, "alice")
    verdicts = [["sport", "w", 1, 1, 0], ["news.a", "w", 1, 1, 0]]
    core.on_client_frame(b"A", encode_api(API_CONSUMER_ACK, verdicts), 0.1, "alice")
    answers = core.take(0.1).clients[b"A"]
    assert [(a[1], a[2]) for a in answers] == [(1, False), (2, False), (3, True)]
    assert answers[0][3]["code"] == "forbidden"
    assert core.errors["forbidden"] == 3  # two requests and one of the two verdicts
