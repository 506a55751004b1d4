"""One setting of a node: its type, default, bounds and help, how a value is checked,
and how its default and bounds are put in words (for --help, the docs and the example
config). The settings themselves are listed in ``zdps.settings``.

No pyzmq and no ``zdps.daemon`` here: the sans-IO cores import the settings.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Setting:
    """One key of the config file, which is also one ``zdps start`` flag.

    ``min`` and ``max`` bound a number (a float must also be finite) or the length of a
    string, which must then be printable; None is no bound.
    """

    name: str
    type: type  # str, int, float, or list (a list of endpoint strings)
    default: Any  # None: unset, computed by ``factory``, or named by ``shown``
    help: str
    min: float | None = None
    max: float | None = None
    min_open: bool = False  # the bound itself is refused
    max_open: bool = False
    unit: str = ""
    choices: tuple[str, ...] = ()
    factory: Callable[[], Any] | None = None  # computes the default when a node starts
    shown: str = ""  # how --help and the docs name a default that is not a plain value

    @property
    def flag(self) -> str:
        """The ``zdps start`` flag; a list (``seeds``) is given one ``--seed`` at a time."""
        name = self.name.removesuffix("s") if self.type is list else self.name
        return "--" + name.replace("_", "-")

    @property
    def shown_default(self) -> str:
        """The default as --help, the docs and the conf file's comments state it."""
        if self.shown:
            return self.shown
        if self.type in (int, float):
            return _number(self.default) + (f" {self.unit}" if self.unit else "")
        return str(self.default)

    @property
    def bounds(self) -> str:
        """The accepted values in words ("" when any value of the type goes)."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        lo, hi = self.min, self.max
        if self.type is str:  # inclusive bounds on the length of a name
            if hi is None:
                return f"at least {lo:g} printable character{'s' * (lo != 1)}" if lo else ""
            return f"{lo or 0:g} to {hi:g} printable characters"
        unit = f" {self.unit}" if self.unit else ""
        if lo is not None and hi is not None and not (self.min_open or self.max_open):
            return f"{_number(lo)} to {_number(hi)}{unit}"
        words = []
        if lo is not None:
            words.append(f"{'over' if self.min_open else 'at least'} {_number(lo)}")
        if hi is not None:
            words.append(f"{'under' if self.max_open else 'at most'} {_number(hi)}")
        return " and ".join(words) + unit if words else ""

    def default_value(self) -> Any:
        """The value a node starts with when neither the file nor a flag sets this key."""
        if self.factory is not None:
            return self.factory()
        return list(self.default) if self.type is list else self.default

    def parse(self, value: Any) -> Any:
        """``value`` (from TOML, a flag or a default) as this setting's type, in bounds.

        Raises ValueError with a message that names the key and says what it must be.
        """
        if value is None and self.default is None and self.factory is None:
            return None  # optional and unset
        if self.type is list:
            value = [value] if isinstance(value, str) else value
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{self.name} must be a list of endpoints")
            return list(value)
        if self.type is str:
            return self._parse_str(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{self.name} must be a number")
        if self.type is int and isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"{self.name} must be a whole number")
            value = int(value)
        if self.type is float:
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"{self.name} must be a finite number, {self.bounds}")
        if not self._within(value):
            raise ValueError(f"{self.name} must be {self.bounds}")
        return value

    def _parse_str(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"{self.name} must be a string")
        if self.choices:
            value = value.lower()
            if value not in self.choices:
                raise ValueError(f"{self.name} must be {self.bounds}")
        elif self.bounds and not (value.isprintable() and self._within(len(value))):
            raise ValueError(f"{self.name} must be {self.bounds}")
        return value

    def _within(self, x: float) -> bool:
        lo, hi = self.min, self.max
        above = lo is None or (x > lo if self.min_open else x >= lo)
        below = hi is None or (x < hi if self.max_open else x <= hi)
        return above and below


def _number(x: float) -> str:
    """3600.0 as "3600", 0.2 as "0.2": numbers as people write them."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))
