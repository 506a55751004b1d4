"""Checks made from a declaration: an entry's NamedTuple says its fields once.

A batch entry is an array whose fields are a NamedTuple's, in order: the annotations
give each field's wire type (``str``, ``bytes`` as bin, ``int`` as 0 to 2**64 - 1,
``bool``), a default makes a trailing field optional, and ``ranges``/``choices``
narrow an int. From that one declaration come the shape the spec writes
(docs/PROTOCOL.md §3.3) and the check itself. The check is compiled into one
expression, as ``collections.namedtuple`` builds its methods: it runs once per entry
per hop, so it must cost a few type tests and no calls, but one: an entry with an ``n``
and a ``batch`` has the batch's shape checked at C speed (``check_batch``), so that no
hop stores or passes on a batch that is not ``n`` bin payloads (a faulty or hostile
peer's): history hands its batches out again, long after they came.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zdps.wire.batches import check_batch
from zdps.wire.errors import malformed
from zdps.wire.limits import U64

_WIRE = {"str": "str", "bytes": "bin", "int": "int", "bool": "bool"}


def _type_name(entry: type, field: str) -> str:
    """A field's annotation as written: ``str``, ``bytes``, ``int`` or ``bool``."""
    annotation = entry.__annotations__[field]
    return getattr(annotation, "__forward_arg__", getattr(annotation, "__name__", annotation))


def shape(entry: type) -> str:
    """The entry as the spec writes it: ``[topic str, seq int, deliver bool?]``."""
    defaults = entry._field_defaults  # type: ignore[attr-defined]
    parts = [
        f"{name} {_WIRE[_type_name(entry, name)]}{'?' if name in defaults else ''}"
        for name in entry._fields  # type: ignore[attr-defined]
    ]
    return f"[{', '.join(parts)}]"


def entry_check(
    kind: str,
    entry: type,
    ranges: dict[str, tuple[int, int]] | None = None,
    choices: dict[str, tuple[Any, ...]] | None = None,
    in_place: bool = False,
) -> Callable[[Any], Any]:
    """A function that returns the checked entry or raises ``malformed``.

    Missing optional fields are filled in with their defaults. ``in_place`` returns
    the decoded array itself instead of a NamedTuple (no object per entry).
    """
    names: tuple[str, ...] = entry._fields  # type: ignore[attr-defined]
    defaults: dict[str, Any] = entry._field_defaults  # type: ignore[attr-defined]
    ranges, choices = ranges or {}, choices or {}
    least = len(names) - len(defaults)
    tests = []
    for i, name in enumerate(names):
        kind_of = _type_name(entry, name)
        if kind_of == "int":
            low, high = ranges.get(name, (0, U64))
            tests.append(f"type(raw[{i}]) is int and {low} <= raw[{i}] < {high}")
        else:
            tests.append(f"type(raw[{i}]) is {kind_of}")
        if name in choices:
            tests.append(f"raw[{i}] in {choices[name]!r}")
    fills = "".join(
        f"    if len(raw) == {i}:\n        raw.append({defaults[name]!r})\n"
        for i, name in enumerate(names)
        if name in defaults
    )
    length = f"{least} <= len(raw) <= {len(names)}" if defaults else f"len(raw) == {least}"
    result = "raw" if in_place else "_new(_entry, raw)"
    batch = (
        f"        _batch(raw[{names.index('batch')}], raw[{names.index('n')}])\n"
        if "batch" in names and "n" in names
        else ""
    )
    source = (
        "def check(raw):\n"
        f"    if type(raw) is not list or not {length}:\n"
        "        raise malformed(_why)\n"
        f"{fills}"
        f"    if {' and '.join(tests)}:\n"
        f"{batch}"
        f"        return {result}\n"
        "    raise malformed(_why)\n"
    )
    why = f"{kind} entries are {shape(entry)}" + "".join(
        f", {name} {low} to {high - 1}" for name, (low, high) in ranges.items()
    )
    namespace: dict[str, Any] = {"malformed": malformed, "_new": tuple.__new__, "_entry": entry}
    namespace["_batch"] = check_batch
    namespace["_why"] = why + "".join(f", {n} one of {c}" for n, c in choices.items())
    exec(source, namespace)  # built from the declaration above, never from input
    return namespace["check"]
