"""The plain line format of ``zdps subscribe``: one line per payload, and one payload
per line (a reader can undo it exactly)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zdps_cli.lines import escape

pytestmark = pytest.mark.timeout(60)

_TOKEN = re.compile(r"\\(?:x([0-9a-f]{2})|u([0-9a-f]{4})|(.))|([^\\]+)", re.S)
_NAMED = {"\\": b"\\", "n": b"\n", "t": b"\t", "r": b"\r"}


def unescape(line: str) -> bytes:
    """The format as README documents it, read back: the test's reference reader."""
    out = bytearray()
    for byte, code, named, text in _TOKEN.findall(line):
        if byte:
            out.append(int(byte, 16))
        elif code:
            out += chr(int(code, 16)).encode()
        elif named:
            out += _NAMED[named]
        else:
            out += text.encode()
    return bytes(out)


@given(st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
def test_every_payload_reads_back_exactly(payload: bytes) -> None:
    assert unescape(escape(payload)) == payload


@given(st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
def test_a_line_holds_no_control_character(payload: bytes) -> None:
    assert not re.search("[\x00-\x1f\x7f-\x9f]", escape(payload))


@pytest.mark.parametrize(
    ("payload", "line"),
    [
        (b"plain text", "plain text"),
        ("caf\u00e9".encode(), "caf\u00e9"),
        (b"a\nb\tc\rd", "a\\nb\\tc\\rd"),
        (b"back\\slash \\n", "back\\\\slash \\\\n"),  # a literal backslash-n is not a newline
        (b"\x00\x1b\x7f", "\\x00\\x1b\\x7f"),
        (b"\xff\xfe", "\\xff\\xfe"),  # not UTF-8
        ("\u0085".encode(), "\\u0085"),  # a C1 control character, valid UTF-8
    ],
)
def test_escapes(payload: bytes, line: str) -> None:
    assert escape(payload) == line
