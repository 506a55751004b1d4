"""Log line formats (zdps/daemon/log_format.py): text with the time, text for journald
(no time, a syslog priority prefix), and JSON with the event's fields."""

from __future__ import annotations

import json
import logging
import os
import sys

import pytest

from zdps.core.log_events import log_event
from zdps.daemon.log_format import JsonFormatter, TextFormatter, under_journald

pytestmark = pytest.mark.timeout(10)


def record(level: int, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("zdps", level, __file__, 1, "%s" * len(args), args, None)
    made.__dict__.update(extra)
    return made


def test_text_has_the_time_except_under_journald_where_it_has_a_priority() -> None:
    event = log_event("peer_down", "warning", node="b", reason="dead")
    plain = TextFormatter("a", journald=False).format(record(logging.WARNING, event))
    assert plain.endswith(" WARNING zdps[a] peer_down node=b reason=dead")
    assert plain[:4].isdigit()  # the year
    journal = TextFormatter("a", journald=True).format(record(logging.WARNING, event))
    assert journal == "<4>WARNING zdps[a] peer_down node=b reason=dead"


def test_json_has_the_events_fields_and_what_was_held_back() -> None:
    event = log_event("bad_input", "warning", code="malformed", what='a "b"', count=3)
    line = JsonFormatter("a").format(record(logging.WARNING, event, " held_back=2", held_back=2))
    parsed = json.loads(line)
    assert parsed["level"] == "warning" and parsed["node"] == "a" and parsed["time"]
    assert (parsed["event"], parsed["code"], parsed["what"], parsed["count"]) == (
        "bad_input", "malformed", 'a "b"', 3,
    )  # fmt: skip
    assert parsed["held_back"] == 2
    down = log_event("peer_down", "warning", node="b", reason="dead")
    parsed = json.loads(JsonFormatter("a").format(record(logging.WARNING, down)))
    assert (parsed["node"], parsed["event_node"], parsed["reason"]) == ("a", "b", "dead")
    other = json.loads(JsonFormatter("a").format(record(logging.DEBUG, "plain text")))
    assert other["message"] == "plain text" and "event" not in other


def test_journald_is_recognised_by_its_stream_only() -> None:
    st = os.fstat(sys.stderr.fileno())
    assert under_journald({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    assert not under_journald({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
    assert not under_journald({"JOURNAL_STREAM": "garbage"}) and not under_journald({})
