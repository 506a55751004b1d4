"""Limits that are part of the protocol: every node and client applies the same ones."""

from __future__ import annotations

from typing import Final

MAX_HOPS: Final = 3  # forwards one publish may take before it is refused (docs/PROTOCOL.md §7.1)
MAX_HISTORY: Final = 10_000_000  # messages per topic a retention may ask for (§7.8)
MAX_HISTORY_TTL: Final = 365 * 24 * 3600.0  # seconds a retention may keep a message
HISTORY_PAGE: Final = 10_000  # entries per history reply (§7.9)
HISTORY_PAGE_BYTES: Final = 4 * 1024 * 1024  # payload bytes per history reply (at least one entry)
HANDOFF_BYTES: Final = 8 * 1024 * 1024  # payload bytes per handoff message (§7.8)
U64: Final = 1 << 64  # seqs, epochs and incarnations are unsigned 64-bit integers
