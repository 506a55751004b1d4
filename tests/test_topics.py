"""Topic and prefix rules (zdps/topics.py): what the entry node and the CLI refuse."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zdps.topics import MAX_TOPIC_BYTES, InvalidTopic, check_prefix, check_topic

pytestmark = pytest.mark.timeout(60)

CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
printable = st.text(st.characters(blacklist_categories=["Cc", "Cs"]), min_size=1, max_size=60)


@given(printable)
def test_text_without_control_characters_is_a_topic(topic: str) -> None:
    assert check_topic(topic) == topic.encode()
    assert check_prefix(topic) == topic.encode()


@given(printable, st.characters(min_codepoint=0, max_codepoint=0x9F).filter(CONTROL.match))
def test_a_control_character_anywhere_is_refused(text: str, control: str) -> None:
    for bad in (control + text, text + control, text[:1] + control + text[1:]):
        with pytest.raises(InvalidTopic, match="contains"):
            check_topic(bad)
        with pytest.raises(InvalidTopic, match="contains"):
            check_prefix(bad)


@pytest.mark.parametrize(
    ("topic", "why"),
    [
        ("", "topic is empty"),
        ("a\x00b", "topic contains a NUL character"),
        ("a\tb", "topic contains the control character '\\t'"),
        ("line\n", "topic contains the control character '\\n'"),
        ("t" * (MAX_TOPIC_BYTES + 1), "the limit is 255"),
        ("\ud800", "not valid Unicode"),
        (b"bytes", "must be text"),
    ],
)
def test_refusals_say_why(topic: object, why: str) -> None:
    with pytest.raises(InvalidTopic, match=re.escape(why)):
        check_topic(topic)  # type: ignore[arg-type]


def test_the_empty_prefix_is_every_topic() -> None:
    assert check_prefix("") == b""
