"""One setting (zdps/setting.py): values checked against its type and bounds, and its
default and bounds in the words --help and the docs use."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zdps.setting import Setting

pytestmark = pytest.mark.timeout(30)

RATE = Setting("rate", float, 0.5, "A rate.", min=0, min_open=True, max=10, unit="s")
COUNT = Setting("count", int, 3, "A count.", min=1)
LEVEL = Setting("level", str, "info", "A level.", choices=("info", "debug"))
NAME = Setting("name", str, None, "A name.", min=1, max=4)
SEEDS = Setting("seeds", list, (), "Endpoints.")


def test_defaults_and_bounds_in_words() -> None:
    assert (RATE.shown_default, RATE.bounds) == ("0.5 s", "over 0 and at most 10 s")
    assert (COUNT.shown_default, COUNT.bounds) == ("3", "at least 1")
    assert LEVEL.bounds == "one of info, debug"
    assert NAME.bounds == "1 to 4 printable characters"
    assert (SEEDS.flag, RATE.flag) == ("--seed", "--rate")


def test_values_are_made_the_setting_s_type() -> None:
    assert COUNT.parse(4.0) == 4 and type(COUNT.parse(4.0)) is int
    assert RATE.parse(2) == 2.0 and type(RATE.parse(2)) is float
    assert LEVEL.parse("DEBUG") == "debug"
    assert SEEDS.parse("tcp://127.0.0.1:1") == ["tcp://127.0.0.1:1"]
    assert NAME.parse(None) is None  # optional and unset
    assert SEEDS.default_value() == [] and SEEDS.default_value() is not SEEDS.default_value()


@pytest.mark.parametrize(
    ("setting", "value", "said"),
    [
        (COUNT, 2.5, "count must be a whole number"),
        (COUNT, True, "count must be a number"),
        (COUNT, 0, "count must be at least 1"),
        (RATE, 0, "rate must be over 0 and at most 10 s"),
        (RATE, math.inf, "rate must be a finite number"),
        (LEVEL, "loud", "level must be one of info, debug"),
        (NAME, "abcde", "name must be 1 to 4 printable characters"),
        (NAME, "a\x00", "name must be 1 to 4 printable characters"),
        (SEEDS, [1], "seeds must be a list of endpoints"),
    ],
)
def test_a_bad_value_is_refused_naming_the_key_and_what_it_must_be(
    setting: Setting, value: object, said: str
) -> None:
    with pytest.raises(ValueError, match=said):
        setting.parse(value)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_number_parses_exactly_when_it_is_within_its_bounds(x: float) -> None:
    inside = 0 < x <= 10
    try:
        assert RATE.parse(x) == x and inside
    except ValueError:
        assert not inside
