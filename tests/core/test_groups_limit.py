"""max_groups (zdps/core/groups.py, docs/PROTOCOL.md §10): local subscriptions past the
bound are refused and counted; what is held already, and leaving, still work."""

from __future__ import annotations

import dataclasses

import pytest

from tests.core.helpers import CONFIG
from tests.core.node_net import SimNet
from zdps.topics import exact_group

pytestmark = pytest.mark.timeout(30)


def test_a_subscription_past_max_groups_is_refused_and_counted() -> None:
    net = SimNet(config=dataclasses.replace(CONFIG, max_groups=2))
    net.add("a")
    net.add("b", ["a"])
    net.settle()
    for topic in ("t1", "t2", "t3"):
        net.subscribe("a", exact_group(topic))
    net.subscribe("a", exact_group("t1"))  # a second SUB of a group held: fine
    net.run_until_quiet()
    assert net.core("a").overlay.which_local_groups() == {exact_group("t1"), exact_group("t2")}
    assert net.error_codes("a") == {"too_many_groups": 1}
    assert exact_group("t3") not in net.core("b").overlay.which_groups()
    net.unsubscribe("a", exact_group("t3"))  # its unsubscribe is harmless
    net.unsubscribe("a", exact_group("t2"))
    net.subscribe("a", exact_group("t3"))  # room again
    net.run_until_quiet()
    assert exact_group("t3") in net.core("b").overlay.which_groups()
    assert net.error_codes("a") == {"too_many_groups": 1}
