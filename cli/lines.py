"""How ``zdps subscribe`` writes a payload on one line of text, unambiguously.

The payload's UTF-8 text is written as it is, except: a backslash is doubled; newline,
tab and carriage return are ``\\n``, ``\\t``, ``\\r``; any other C0 control byte, DEL,
and each byte that is not valid UTF-8 is ``\\xHH`` (the byte); a C1 control character
(valid UTF-8) is ``\\u00HH``. So a line never holds a control character, and a line
names one payload only.
"""

from __future__ import annotations

_NAMED = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_ESCAPES: dict[int, str] = {
    **{c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]},
    **{c: f"\\u{c:04x}" for c in range(0x80, 0xA0)},
    **{0xDC00 + b: f"\\x{b:02x}" for b in range(0x80, 0x100)},  # surrogateescape's bytes
    **{ord(k): v for k, v in _NAMED.items()},
}


def escape(payload: bytes) -> str:
    """``payload`` as one line of text (no line ending), as the module says."""
    return payload.decode("utf-8", "surrogateescape").translate(_ESCAPES)
