"""The ZAP handler (ZeroMQ RFC 27): who may complete a CURVE handshake with this node.

libzmq asks it, over ``inproc://zeromq.zap.01``, about every connection to a socket that
has a ZAP domain. It runs in the daemon's own poll loop (no thread): a handshake waits
at most one turn. The sockets set ZAP_ENFORCE_DOMAIN, so a socket whose domain this
handler does not serve refuses every connection instead of accepting any key.
"""

from __future__ import annotations

from collections.abc import Callable

import zmq

from zdps.daemon.polling import drain

ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # fixed by RFC 27
CLUSTER_DOMAIN = b"zdps-cluster"  # the cluster socket: node keys (curve_peers)
CLIENT_DOMAIN = b"zdps-clients"  # the API and PUB sockets: client keys (curve_clients)
Rules = dict[bytes, tuple[str, Callable[[bytes], str | None]]]  # domain -> (list, lookup)


def answer(request: list[bytes], rules: Rules) -> tuple[list[bytes], str]:
    """The reply to one ZAP request and, when it refuses, why ("" when it accepts).

    ``rules`` maps each ZAP domain served to the name of its allow-list and a lookup
    from a raw 32-byte public key to the name it authenticates (the reply's User-Id),
    or None. Request frames: version, request id, domain, address, identity,
    mechanism, credentials.
    """
    if len(request) < 6 or request[0] != b"1.0":
        request_id = request[1] if len(request) > 1 else b""
        return [b"1.0", request_id, b"500", b"bad request", b"", b""], "a malformed ZAP request"
    request_id, domain, mechanism = request[1], request[2], request[5]
    rule = rules.get(domain)
    if rule is None:
        why = f"no access rules for ZAP domain {domain!r}"
    elif mechanism != b"CURVE" or len(request) != 7:
        why = f"{mechanism.decode(errors='replace')} connection to a CURVE-only socket"
    elif (name := rule[1](request[6])) is None:
        why = f"a CURVE key that is not in {rule[0]}"
    else:
        return [b"1.0", request_id, b"200", b"OK", name.encode(), b""], ""
    return [b"1.0", request_id, b"400", why.encode(), b"", b""], why


class ZapHandler:
    """The REP socket libzmq sends ZAP requests to; ``serve`` answers what is waiting."""

    def __init__(self, ctx: zmq.Context, rules: Rules) -> None:
        self.socket = ctx.socket(zmq.REP)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(ZAP_ENDPOINT)  # before any socket that asks it
        self._rules = rules

    def serve(self) -> list[tuple[str, str]]:
        """Answer every waiting request; (address, why) for each refused connection."""
        refused = []
        for request in drain(self.socket, self.socket.recv_multipart):
            reply, why = answer(request, self._rules)
            self.socket.send_multipart(reply)
            if why:
                address = request[3].decode(errors="replace") if len(request) > 3 else "?"
                refused.append((address, why))
        return refused

    def close(self) -> None:
        self.socket.close(0)
