"""A large sync in parts (docs/PROTOCOL.md §5): what the receiver does with parts that
arrive in order, out of order or mixed with other messages, that each part leaves in a
frame of its own, and that only a peer that speaks ``sync_part`` is sent parts.

The hypothesis properties of every mix are in test_overlay_properties.py; these are
the cases one by one, and the node-level run of a sync of 45,000 groups.
"""

from __future__ import annotations

import pytest

from tests.core.helpers import hello
from tests.core.node_net import SimNet
from zdps.core.membership import Membership
from zdps.core.membership_actions import PeerUp
from zdps.core.membership_config import MembershipConfig
from zdps.core.outbox import FRAME_MESSAGES, envelopes
from zdps.core.overlay import Overlay, OverlaySend
from zdps.core.swim import Swim, SwimConfig
from zdps.topics import exact_group
from zdps.wire.codec import decode_envelope
from zdps.wire.gossip import SYNC_PART_GROUPS, Hello, Ping, Sync, SyncPart, Update, sync_parts
from zdps.wire.messages import SPOKEN, decode_message

pytestmark = pytest.mark.timeout(120)

GROUPS = [exact_group(f"g{i}") for i in range(10)]


def receiver(held: dict[bytes, int] | None = None) -> Overlay:
    """An overlay that knows peer "p" and holds ``held`` for it."""
    scope = Overlay("me")
    scope.peer_up("p")
    if held:
        scope.handle("p", Sync(dict(held)))
    return scope


def hand(scope: Overlay, *parts: SyncPart) -> None:
    for part in parts:
        scope.handle("p", decode_message(["sync_part", part.body()]))


def test_the_parts_of_a_sync_replace_what_was_held_as_one_sync_would() -> None:
    scope = receiver({GROUPS[0]: 1, GROUPS[1]: 2, GROUPS[9]: 1})
    new = {g: 3 for g in GROUPS[1:6]}
    parts = sync_parts(new, 2)
    hand(scope, *parts[:-1])
    assert scope.members(GROUPS[0]) == {"p": 1}  # unnamed groups go only with the last
    hand(scope, parts[-1])
    assert scope._remote["p"] == new and scope.which_groups() == set(new)
    whole = receiver()
    whole.handle("p", Sync(dict(new)))
    assert scope.peer_digest("p") == whole.peer_digest("p")
    assert scope.peer_digest("p", True) == whole.peer_digest("p", True)


def test_a_missing_part_abandons_the_sync_once_and_a_new_one_mends_it() -> None:
    scope = receiver({GROUPS[9]: 1})
    new = {g: 1 for g in GROUPS[:6]}
    parts = sync_parts(new, 2)
    hand(scope, parts[0], parts[2])  # part 1 was lost on a link that reconnected
    assert scope.parts_lost == 1
    assert scope._remote["p"] == {GROUPS[9]: 1, GROUPS[0]: 1, GROUPS[1]: 1}
    wanted = receiver()
    wanted.handle("p", Sync(dict(new)))
    assert scope.peer_digest("p") != wanted.peer_digest("p")  # the next ping asks again
    hand(scope, *sync_parts(new, 2))  # the resync
    assert scope._remote["p"] == new and scope.parts_lost == 1


def test_parts_of_a_sync_whose_first_part_was_lost_count_once_and_change_nothing() -> None:
    scope = receiver({GROUPS[9]: 1})
    hand(scope, *sync_parts({g: 1 for g in GROUPS[:6]}, 2)[1:])
    assert scope.parts_lost == 1 and scope._remote["p"] == {GROUPS[9]: 1}


def test_a_whole_sync_between_parts_replaces_the_parted_one() -> None:
    scope = receiver()
    parts = sync_parts({g: 1 for g in GROUPS[:6]}, 2)
    hand(scope, parts[0])
    scope.handle("p", Sync({GROUPS[8]: 1}))
    hand(scope, *parts[1:])  # what is left of the old sync: out of turn now
    assert scope._remote["p"] == {GROUPS[8]: 1} and scope.parts_lost == 1


def test_an_update_between_parts_is_newer_than_any_part() -> None:
    scope = receiver({GROUPS[9]: 1})
    parts = sync_parts({g: 1 for g in GROUPS[:4]}, 2)
    hand(scope, parts[0])
    scope.handle("p", Update({GROUPS[9]: 2, GROUPS[2]: 0}))
    hand(scope, parts[1])
    assert scope._remote["p"] == {
        GROUPS[0]: 1,
        GROUPS[1]: 1,
        GROUPS[2]: 1,
        GROUPS[3]: 1,
        GROUPS[9]: 2,
    }


def test_a_peer_that_goes_down_mid_sync_leaves_nothing_behind() -> None:
    scope = receiver()
    parts = sync_parts({g: 1 for g in GROUPS[:4]}, 2)
    hand(scope, parts[0])
    scope.peer_down("p")
    scope.peer_up("p")
    hand(scope, parts[1])  # from the old life of the link: out of turn
    assert scope._remote["p"] == {} and scope.which_groups() == set()


def test_a_sync_goes_in_parts_only_to_a_peer_that_speaks_them_and_only_when_large() -> None:
    scope = Overlay("me", part_groups=3)
    for group in GROUPS[:3]:
        scope.join(group)
    assert [type(a.message) for a in scope.peer_up("p", parts=True)] == [Sync]
    scope.join(GROUPS[3])
    sent = scope.peer_up("p", parts=True)
    assert [(a.message.part, a.message.last) for a in sent] == [(0, False), (1, True)]
    assert all(isinstance(a, OverlaySend) and a.peer == "p" for a in sent)
    assert [type(a.message) for a in scope.peer_up("p", parts=False)] == [Sync]


def test_every_part_leaves_in_a_frame_of_its_own() -> None:
    counts = {exact_group(f"t{i}"): 1 for i in range(3 * FRAME_MESSAGES + 5)}
    parts = sync_parts(counts, FRAME_MESSAGES)
    messages = [Ping("v", None), *parts, Update({GROUPS[0]: 1})]
    frames = [decode_envelope(f)[3] for f in envelopes(("s", "a", 1), messages)]
    kinds = [[m[0] for m in frame] for frame in frames]
    assert max(k.count("sync_part") for k in kinds) == 1
    assert [m[0] for frame in frames for m in frame] == [m.KIND for m in messages]


@pytest.mark.parametrize(
    ("kinds", "parts"),
    [(SPOKEN, True), (tuple(k for k in SPOKEN if k != "sync_part"), False), (None, False)],
    ids=["speaks parts", "from before parts", "from before kinds"],
)
def test_a_peer_takes_parts_if_its_hello_lists_sync_part(
    kinds: tuple[str, ...] | None, parts: bool
) -> None:
    m = Membership(
        "a", 1, "inproc://a", Swim("a", 1, SwimConfig()), [], MembershipConfig()
    )  # fmt: skip
    said = hello("b")
    actions = m.handle("b", 1, Hello(said.advertise, None, None, True, kinds=kinds), 0.0)
    assert [a for a in actions if isinstance(a, PeerUp)] == [
        PeerUp("b", "inproc://b", False, parts)
    ]


def test_a_node_takes_in_a_sync_of_nine_parts_each_in_a_frame_of_its_own() -> None:
    """Parts of SYNC_PART_GROUPS at most, each in a frame of its own; the new node holds
    every group, nothing is lost, no digest differs afterwards."""
    net = SimNet()
    net.add("a")
    groups = [exact_group(f"topic.{i}") for i in range(9 * SYNC_PART_GROUPS - 7)]
    for group in groups:
        net.subscribe("a", group)
    net.add("b", seeds=["a"])
    net.settle()
    parts = [
        m
        for s in net.sent
        if s.src == "a" and s.dst == "b"
        for m in s.messages
        if m[0] == "sync_part"
    ]
    assert len(parts) == 9 and max(len(m[1]["counts"]) for m in parts) == SYNC_PART_GROUPS
    frames = [s for s in net.sent if s.src == "a" and any(m[0] == "sync_part" for m in s.messages)]
    assert all(sum(m[0] == "sync_part" for m in s.messages) == 1 for s in frames)
    b = net.core("b")
    assert b.groups.overlay.which_groups() == set(groups)
    assert b.counters["sync_parts_lost"] == 0 and b.counters["resyncs_asked"] == 0
    net.advance(3.0)  # pings carry digests: none differs
    assert b.counters["resyncs_asked"] == 0
