"""What protects a gateway from its clients (docs/GATEWAY.md, "Limits"), without
importing the gateway itself (the CLI shows these defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from zdps.gateway.tokens import Tokens


@dataclass(frozen=True, slots=True)
class Limits:
    """What protects the gateway from its clients (docs/GATEWAY.md, "Limits")."""

    max_connections: int = 10_000
    max_send_buffer: int = 1024 * 1024  # bytes queued to one socket before it is dropped
    origins: tuple[str, ...] = ()  # allowed Origin headers; empty: any
    tokens: Tokens | None = None  # who may connect, and what each may do (tokens.py)
    idle_timeout: int = 60  # seconds without a frame before a socket is closed (Phoenix: 60)
