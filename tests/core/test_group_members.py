"""The compact form of a group's members in the overlay's table (group_members.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zdps.core.group_members import as_dict, compact

pytestmark = pytest.mark.timeout(60)

nodes = st.dictionaries(st.text(min_size=1, max_size=4), st.integers(1, 10**6), min_size=1)


@given(nodes)
def test_the_compact_form_gives_back_the_same_members(members: dict[str, int]) -> None:
    assert as_dict(compact(dict(members))) == members


@given(nodes)
def test_one_node_takes_no_dict_and_one_member_not_even_a_tuple(members: dict[str, int]) -> None:
    form = compact(dict(members))
    if len(members) > 1:
        assert type(form) is dict
    elif next(iter(members.values())) == 1:
        assert form == next(iter(members))
    else:
        assert form == next(iter(members.items()))


def test_as_dict_hands_out_a_copy_and_none_is_no_member() -> None:
    table = {"a": 2, "b": 1}
    copy = as_dict(table)
    copy["c"] = 1
    assert table == {"a": 2, "b": 1} and as_dict(None) == {}
