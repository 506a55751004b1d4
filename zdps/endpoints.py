"""ZeroMQ endpoint spelling: which endpoints zdps accepts, binds and dials.

Endpoints come from configuration and, for peers, from the network (hellos and peer
lists), so they are checked here once, before any socket sees them: a string libzmq
cannot parse would otherwise make ``connect`` raise inside the IO loop.
"""

from __future__ import annotations

import re

_ENDPOINT = re.compile(
    r"^(tcp://(\[[0-9a-fA-F:.]+\]|[^:/\s\[\]]+):(\d{1,5}|\*)|ipc://\S+|inproc://\S+)$"
)
WILDCARD_HOSTS = frozenset({"*", "0.0.0.0", "[::]"})


def endpoint_problem(endpoint: object) -> str | None:
    """Why ``endpoint`` is not usable, or None when it is."""
    if not isinstance(endpoint, str) or len(endpoint) > 512:
        return "is not an endpoint like tcp://127.0.0.1:7710"
    match = _ENDPOINT.match(endpoint)
    if not match:
        return "is not an endpoint like tcp://127.0.0.1:7710"
    port = match.group(3)
    if port and port != "*" and not 0 < int(port) < 65536:
        return "has a port outside 1-65535"
    return None


def is_dialable(endpoint: object) -> bool:
    """Whether a peer may be dialed at ``endpoint`` (concrete host and port)."""
    return endpoint_problem(endpoint) is None and not is_wildcard(str(endpoint))


def host(endpoint: str) -> str:
    """The host part of a tcp endpoint ("" for ipc)."""
    match = _ENDPOINT.match(endpoint)
    return match.group(2) if match and match.group(2) else ""


def is_wildcard(endpoint: str) -> bool:
    """True when the endpoint binds every address or an ephemeral port."""
    return host(endpoint) in WILDCARD_HOSTS or endpoint.endswith(":*")


def next_to(endpoint: str) -> str:
    """An endpoint beside ``endpoint``: tcp with the next port (``*`` stays ``*``),
    ipc and inproc with ``.batches`` appended."""
    match = _ENDPOINT.match(endpoint)
    if match and match.group(3):
        port = match.group(3)
        after = port if port == "*" else str(int(port) + 1)
        return endpoint[: -len(port)] + after
    return endpoint + ".batches"


def connectable(endpoint: str, fallback_host: str) -> str:
    """The endpoint a client should dial for a socket bound at ``endpoint``."""
    bound_host = host(endpoint)
    if bound_host in WILDCARD_HOSTS:
        return endpoint.replace(f"//{bound_host}:", f"//{fallback_host}:", 1)
    return endpoint
