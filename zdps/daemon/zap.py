"""The ZAP handler (ZeroMQ RFC 27): who may complete a handshake with this node.

libzmq asks it, over ``inproc://zeromq.zap.01``, about every connection to a socket that
has a ZAP domain: the client sockets always (plain ones too, for the connection limit),
the cluster socket with CURVE. It runs in the daemon's own poll loop (no thread): a
handshake waits at most one turn. CURVE sockets set ZAP_ENFORCE_DOMAIN, so a socket
whose domain this handler does not serve refuses every connection instead of
accepting any key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import zmq

from zdps.daemon.polling import drain
from zdps.wire.errors import E_UNAUTHENTICATED

ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # fixed by RFC 27
CLUSTER_DOMAIN = b"zdps-cluster"  # the cluster socket: node keys (curve_peers)
CLIENT_DOMAIN = b"zdps-clients"  # the API and PUB sockets: client keys (curve_clients)


class Rule(NamedTuple):
    """Who may connect in one ZAP domain."""

    allow_list: str  # where the allowed keys are (named in refusals)
    lookup: Callable[[bytes], str | None] | None  # a CURVE key -> its name; None: plain


Rules = dict[bytes, Rule]
Admit = Callable[[bytes], tuple[str, str] | None]  # domain -> (code, why) of a limit, or None
Refusal = tuple[str, str, str]  # code, why, where


def answer(request: list[bytes], rules: Rules, admit: Admit) -> tuple[list[bytes], str, str]:
    """The reply to one ZAP request and, when it refuses, the error code and why ("", ""
    when it accepts).

    ``rules`` maps each ZAP domain served to its rule: the CURVE keys it lets in (with the
    name each authenticates, the reply's User-Id), or plain connections; ``admit`` then
    applies the limits. Request frames: version, request id, domain, address, identity,
    mechanism, credentials.
    """
    if len(request) < 6 or request[0] != b"1.0":
        request_id = request[1] if len(request) > 1 else b""
        reply = [b"1.0", request_id, b"500", b"bad request", b"", b""]
        return reply, E_UNAUTHENTICATED, "a malformed ZAP request"
    request_id, domain, mechanism = request[1], request[2], request[5]
    rule, name = rules.get(domain), None
    if rule is None:
        why = f"no access rules for ZAP domain {domain!r}"
    elif rule.lookup is None:
        name = "" if mechanism == b"NULL" else None
        why = f"{mechanism.decode(errors='replace')} connection to a plain socket"
    elif mechanism != b"CURVE" or len(request) != 7:
        why = f"{mechanism.decode(errors='replace')} connection to a CURVE-only socket"
    elif (name := rule.lookup(request[6])) is None:
        why = f"a CURVE key that is not in {rule.allow_list}"
    code = E_UNAUTHENTICATED
    if name is not None:
        limit = admit(domain)
        if limit is None:
            return [b"1.0", request_id, b"200", b"OK", name.encode(), b""], "", ""
        code, why = limit
    return [b"1.0", request_id, b"400", why.encode(), b"", b""], code, why


class ZapHandler:
    """The REP socket libzmq sends ZAP requests to; ``serve`` answers what is waiting."""

    def __init__(self, ctx: zmq.Context, rules: Rules, admit: Admit) -> None:
        self.socket = ctx.socket(zmq.REP)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(ZAP_ENDPOINT)  # before any socket that asks it
        self._rules = rules
        self._admit = admit

    def serve(self) -> list[Refusal]:
        """Answer every waiting request; (code, why, where) for each refused connection."""
        refused = []
        for request in drain(self.socket, self.socket.recv_multipart):
            reply, code, why = answer(request, self._rules, self._admit)
            self.socket.send_multipart(reply)
            if why:
                address = request[3].decode(errors="replace") if len(request) > 3 else "?"
                refused.append((code, why, f"from {address}"))
        return refused

    def close(self) -> None:
        self.socket.close(0)
