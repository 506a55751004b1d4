"""The daemon writes the cores' log events: at their level, rate-limited ones at most once
per interval per key with a count of what was held back, bad input once a second per code."""

from __future__ import annotations

import logging

import pytest

from zdps.core.log_events import log_event
from zdps.daemon.logs import EventLog

pytestmark = pytest.mark.timeout(10)


def test_bad_input_one_line_per_code_per_second(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("zdps.test.ratelimit")
    log = EventLog(logger)
    with caplog.at_level(logging.WARNING, logger=logger.name):
        for i in range(100):
            log.bad_input("malformed", f"frame {i}", now=10.0 + i * 0.001)
        log.bad_input("bad_version", "v9", now=10.05)
        log.bad_input("malformed", "frame late", now=11.5)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        'bad_input code=malformed what="frame 0"',
        "bad_input code=bad_version what=v9",
        'bad_input code=malformed what="frame late" held_back=99',
    ]
    assert {r.levelno for r in caplog.records} == {logging.WARNING}


def test_events_keep_their_level_and_limit(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("zdps.test.events")
    log = EventLog(logger)
    with caplog.at_level(logging.INFO, logger=logger.name):
        log.write(log_event("peer_down", "warning", node="b", reason="dead"), now=1.0)
        for t in (1.0, 1.1, 1.2, 6.5):
            log.write(log_event("flow_paused", every=5.0, peers="b"), now=t)
        log.write(log_event("node_id_clash", "error", other="tcp://127.0.0.1:1"), now=7.0)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "peer_down node=b reason=dead"),
        (logging.INFO, "flow_paused peers=b"),
        (logging.INFO, "flow_paused peers=b held_back=2"),
        (logging.ERROR, "node_id_clash other=tcp://127.0.0.1:1"),
    ]
