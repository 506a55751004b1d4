"""A group's members in the overlay's shared table (``overlay.py``), in the least memory
a million groups can take: the node's id alone for one node with one member (the common
case), (node, count) for one node, a dict for several."""

from __future__ import annotations

Members = str | tuple[str, int] | dict[str, int]


def as_dict(members: Members | None) -> dict[str, int]:
    """A group's members as ``{node: count}``: a new dict, the caller's to change."""
    if members is None:
        return {}
    if type(members) is str:
        return {members: 1}
    if type(members) is tuple:
        return {members[0]: members[1]}
    return dict(members)  # type: ignore[arg-type]


def compact(nodes: dict[str, int]) -> Members:
    """The least memory ``nodes`` (not empty) takes in the table."""
    assert nodes and all(count > 0 for count in nodes.values())
    if len(nodes) > 1:
        return nodes
    ((node, count),) = nodes.items()
    return node if count == 1 else (node, count)
