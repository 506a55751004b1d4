"""Topic and prefix rules (zdps/topics.py): what the entry node and the CLI refuse."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zdps.topics import (
    MAX_TOPIC_BYTES,
    InvalidTopic,
    all_valid_groups,
    check_prefix,
    check_topic,
    is_valid_group,
)
from zdps.wire import ProtocolError
from zdps.wire.gossip import decode_counts

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


# Groups as peers send them: every byte string, and the ones that look like groups.
GROUP_BYTES = st.one_of(
    st.binary(max_size=12),
    st.text(max_size=10).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.text(max_size=10).map(lambda t: t.encode("utf-8", "surrogatepass") + b"\x00"),
    st.sampled_from([b"", b"\x00", b"a\x00", b"a\x00b", b"\xff\x00", b"x" * 255 + b"\x00"]),
)


@given(groups=st.lists(GROUP_BYTES, max_size=8, unique=True))
def test_the_bulk_check_of_many_groups_agrees_with_the_one_by_one_check(
    groups: list[bytes],
) -> None:
    """all_valid_groups may say False for valid groups (then each is looked at), never
    True for an invalid one; and it says True for groups of topics and prefixes."""
    one_by_one = all(is_valid_group(g) for g in groups)
    if all_valid_groups(groups):
        assert one_by_one
    plain = [g for g in groups if is_valid_group(g) and len(g) <= MAX_TOPIC_BYTES]
    assert all_valid_groups(plain)


@given(groups=st.lists(GROUP_BYTES, max_size=8, unique=True), count=st.integers(-1, 2**64))
def test_a_sync_is_refused_exactly_when_a_group_or_count_is_bad(
    groups: list[bytes], count: int
) -> None:
    counts = dict.fromkeys(groups, count)
    bad = not all(map(is_valid_group, groups)) or (groups and not 0 <= count < 2**64)
    try:
        decode_counts(counts, "sync")
    except ProtocolError:
        assert bad
    else:
        assert not bad
