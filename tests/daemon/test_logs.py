"""Bad input is logged at most once a second per kind, with a count of what was held back."""

from __future__ import annotations

import logging

import pytest

from zdps.daemon.logs import RateLimitedLog

pytestmark = pytest.mark.timeout(10)


def test_one_line_per_kind_per_second(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("zdps.test.ratelimit")
    log = RateLimitedLog(logger, interval=1.0)
    with caplog.at_level(logging.WARNING, logger=logger.name):
        for i in range(100):
            log.report("malformed", f"frame {i}", now=10.0 + i * 0.001)
        log.report("bad_version", "v9", now=10.05)
        log.report("malformed", "frame late", now=11.5)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "bad input [malformed]: frame 0",
        "bad input [bad_version]: v9",
        "bad input [malformed]: frame late (99 more like it since the last report)",
    ]
