"""The scope overlay's anti-entropy digests (docs/PROTOCOL.md §5): what a ping carries.

A ping carries the digest of the sender's local counts; the receiver compares it with
the digest of what it holds for the sender and asks for a sync when they differ. Two
forms of the same comparison:

* the **sum** digest: the sum modulo 2⁶⁴ of every (group, count)'s own BLAKE2b-64,
  kept up to date as counts change (O(1) a change), sent as ``s`` and 16 hex digits;
* the **sorted** digest, the first form: BLAKE2b-64 over all the counts in group order,
  16 hex digits. Any change means hashing every group again: about a second at a
  million groups, on every heartbeat while they change. It is made only for peers whose
  own pings carry it (nodes from before the sum), and then only when it is sent.
"""

from __future__ import annotations

import hashlib

Counts = dict[bytes, int]
SUM_MARK = "s"  # a digest of the sum form starts with it
MODULUS = 1 << 64
_BLAKE2B_64 = hashlib.blake2b(digest_size=8)  # copied: a third faster than made anew
_ONE = (1).to_bytes(8, "big")  # the count of most groups


def entry_hash(group: bytes, count: int) -> int:
    """One (group, count)'s share of the sum; 0 for a count of 0 (not held)."""
    if not count:
        return 0
    h = _BLAKE2B_64.copy()
    h.update(len(group).to_bytes(2, "big"))
    h.update(group)
    h.update(_ONE if count == 1 else count.to_bytes(8, "big"))
    return int.from_bytes(h.digest(), "big")


def changed(total: int, group: bytes, old: int, new: int) -> int:
    """The sum after ``group``'s count went from ``old`` to ``new`` (one of them is 0
    for a group that comes or goes: no hash to make for it)."""
    if old:
        total -= entry_hash(group, old)
    if new:
        total += entry_hash(group, new)
    return total % MODULUS


def sum_digest(total: int) -> str:
    return f"{SUM_MARK}{total:016x}"


def is_sum(digest: str) -> bool:
    return digest.startswith(SUM_MARK)


def sorted_digest(counts: Counts) -> str:
    """The sorted form, over all of ``counts``."""
    h = hashlib.blake2b(digest_size=8)
    for group in sorted(counts):
        h.update(len(group).to_bytes(2, "big") + group + counts[group].to_bytes(8, "big"))
    return h.hexdigest()
