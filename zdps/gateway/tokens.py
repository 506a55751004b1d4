"""Token authentication at the gateway (docs/GATEWAY.md, "Tokens").

A tokens file names each client, its secret token and what it may do, with the rules of
the node's client permissions (docs/PROTOCOL.md §2.2, ``zdps/core/permissions.py``):

    [alice]
    token = "a long random secret"
    publish = ["chat."]
    subscribe = ["chat.", "public."]

A WebSocket brings its token as the JS client's ``authToken`` does (the subprotocol
``base64url.bearer.phx.<token in base64>`` next to ``phoenix``) or as the query
parameter ``token`` (the JS client's ``params``). With a tokens file, a connection
without a known token is refused (HTTP 403).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from zdps.core.permissions import Permissions
from zdps.gateway.phoenix import PhoenixSocket

Connection = TypeVar("Connection")

BEARER = "base64url.bearer.phx."  # the JS client's authToken subprotocol prefix
MIN_TOKEN = 16  # characters: a token is a secret, not a name


@dataclass(frozen=True, slots=True)
class Tokens:
    """Who each token is, and what they may do."""

    names: dict[str, str]  # token -> client name
    permissions: Permissions
    path: Path  # the file they were read from (read again on SIGHUP)

    @classmethod
    def read(cls, path: Path) -> Tokens:
        """The tokens file, or ValueError saying what is wrong with it."""
        try:
            table = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"{path}: {exc}") from None
        names: dict[str, str] = {}
        rules = {}
        for name, entry in table.items():
            if not isinstance(entry, dict):
                raise ValueError(f"{path}: [{name}] must be a table")
            token = entry.get("token")
            if not isinstance(token, str) or len(token) < MIN_TOKEN:
                raise ValueError(f"{path}: [{name}] needs a token of {MIN_TOKEN}+ characters")
            if token in names:
                raise ValueError(f"{path}: [{name}] has the token of [{names[token]}]")
            names[token] = name
            rules[name] = {key: value for key, value in entry.items() if key != "token"}
        try:
            permissions = Permissions.parse(rules)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        return cls(names, permissions, path)

    def who(self, token: str | None) -> str | None:
        """The client ``token`` names (compared in constant time), or None."""
        if token is None:
            return None
        found = None
        for known, name in self.names.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                found = name
        return found


def token_of(path: str, protocols: list[str]) -> str | None:
    """The token a WebSocket request brings: its authToken subprotocol, else ``?token=``."""
    for protocol in protocols:
        if protocol.startswith(BEARER):
            encoded = protocol.removeprefix(BEARER).replace("+", "-").replace("/", "_")
            padded = encoded + "=" * (-len(encoded) % 4)
            try:
                token = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
            return token or None
    return parse_qs(urlsplit(path).query).get("token", [None])[0]


def reread(
    old: Tokens, sockets: Mapping[Connection, PhoenixSocket]
) -> tuple[Tokens, list[Connection]]:
    """The tokens file read again (ValueError, and nothing changed, if it is bad), each
    socket's client and rules taken from it by the token it connected with; the
    sockets whose token is no longer in it."""
    tokens = Tokens.read(old.path)
    gone = []
    for connection, sock in sockets.items():
        sock.user = tokens.who(sock.token)
        if sock.user is None:
            gone.append(connection)
        else:
            sock.permissions = tokens.permissions
    return tokens, gone


def phoenix_if_offered(_connection: Any, offered: Sequence[str]) -> str | None:
    """The JS client offers ``phoenix`` (and its token) only with ``authToken``; a
    client that offers nothing gets no subprotocol, as from Phoenix."""
    return "phoenix" if "phoenix" in offered else None
