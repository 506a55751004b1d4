"""Whether the gateway's node answers (node_watch.py): said when it changes, not at every
question."""

from __future__ import annotations

import logging

import pytest

from zdps.gateway.node_watch import NodeWatch

pytestmark = pytest.mark.timeout(30)


def test_a_change_is_logged_once_and_the_reason_kept(caplog: pytest.LogCaptureFixture) -> None:
    watch = NodeWatch(client=None, node="tcp://127.0.0.1:1")  # type: ignore[arg-type]
    assert watch.answers is None
    with caplog.at_level(logging.INFO, logger="zdps.gateway"):
        watch.saw("unreachable: nothing there")
        watch.saw("timeout: no answer")
        watch.saw(None)
        watch.saw(None)
    assert [(r.levelname, r.getMessage()[:41]) for r in caplog.records] == [
        ("WARNING", "the zdps node at tcp://127.0.0.1:1 does n"),
        ("INFO", "the zdps node at tcp://127.0.0.1:1 answer"),
    ]
    assert "unreachable: nothing there" in caplog.records[0].getMessage()
    assert watch.answers is True and watch.why == ""
    watch.saw("timeout: no answer")  # one miss: a pause, not a node that is gone
    assert watch.answers is True and watch.why == "timeout: no answer"
    watch.saw("timeout: no answer")
    assert watch.answers is False
