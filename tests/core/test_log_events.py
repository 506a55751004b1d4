"""Log events are one ``event key=value`` line each: values that would break the format
are quoted and escaped, so a line always splits back into the fields it was made of;
an empty value (a reason that says nothing) is a bug; every event the code can log is
in README's Logs table, with its fields."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zdps.core.log_events import log_event

pytestmark = pytest.mark.timeout(30)


def test_plain_values_are_bare_and_floats_rounded() -> None:
    event = log_event("peer_down", "warning", node="b", reason="dead", after_s=1.23456)
    assert str(event) == "peer_down node=b reason=dead after_s=1.235"


def test_values_with_spaces_or_quotes_are_quoted() -> None:
    event = log_event("bad_input", what='message from b: "x" = y')
    assert str(event) == r'bad_input what="message from b: \"x\" = y"'


def test_an_empty_value_is_a_bug() -> None:
    with pytest.raises(AssertionError):
        log_event("peer_down", reason="")
    with pytest.raises(AssertionError):
        log_event("peer_down", "loud", reason="dead")


_FIELD = re.compile(r' (\w+)=(?:"((?:[^"\\]|\\.)*)"|([^\s"]+))')
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t"}


def _unescape(match: re.Match[str]) -> str:
    code = match[1]
    return chr(int(code[1:], 16)) if len(code) == 3 else _UNESCAPE.get(code, code)


def parse(line: str) -> tuple[str, dict[str, str]]:
    """A reader of the format that knows only what the docs say (docs/PROTOCOL.md §8.5)."""
    event, _, rest = line.partition(" ")
    fields, at = {}, 0
    rest = " " + rest if rest else ""
    while at < len(rest):
        match = _FIELD.match(rest, at)
        assert match, (line, rest[at:])
        quoted = match[2] is not None
        value = match[2] if quoted else match[3]
        if quoted:
            value = re.sub(r"\\(x[0-9a-f]{2}|.)", _unescape, value, flags=re.S)
        fields[match[1]] = value
        at = match.end()
    return event, fields


@given(st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), st.text(min_size=1)))
def test_a_line_splits_back_into_its_fields(fields: dict[str, str]) -> None:
    line = str(log_event("event", **fields))
    assert "\n" not in line and "\r" not in line
    assert parse(line) == ("event", fields)


ROOT = Path(__file__).resolve().parents[2]
_MADE = re.compile(r'(?:note|log_event)\(\s*"(\w+)"(.*?)\)$', re.S | re.M)


def test_every_event_the_code_logs_is_in_the_readme_with_its_fields() -> None:
    readme = ROOT.joinpath("README.md").read_text()
    table = readme[readme.index("### Logs") : readme.index("### From Python")]
    rows = {m[1]: set(m[2].split()) for m in re.finditer(r"^\| `(\w+)((?: \w+)*)`", table, re.M)}
    rows |= {m[1]: set() for m in re.finditer(r"/ `(\w+)`", table)}
    made = {}
    for path in ROOT.joinpath("zdps").rglob("*.py"):
        for match in _MADE.finditer(path.read_text()):
            keys = set(re.findall(r"\b(\w+)=", match[2])) - {"every"}
            made.setdefault(match[1], set()).update(keys)
    assert made, "no events found: the pattern is stale"
    assert set(made) <= set(rows), set(made) - set(rows)
    for event, keys in made.items():
        if event != "ready":  # its fields are the endpoints, listed in words
            assert keys <= rows[event], (event, keys - rows[event])


@given(st.text(max_size=40))
def test_a_line_stays_one_line_of_printable_text_whatever_a_value_holds(value: str) -> None:
    line = str(log_event("incompatible_peer", node=value or "x"))
    assert not re.search(r"[\x00-\x1f\x7f-\x9f]", line)
