"""Who may connect to the node: its ZAP handler, the connection limit of the client
sockets, and the handshakes CURVE saw fail (docs/PROTOCOL.md §2.1, §10).

The client sockets (API and both PUBs) always ask ZAP, plain ones too, so that a
connection past ``max_clients`` is refused at its handshake (``too_many_clients``): a
libzmq socket cannot close one connection of its own, but its ZAP handler can refuse
it. Open connections are counted by file descriptor from the sockets' monitors, the
one asking included (its accept comes before its handshake): a connection that finds
``max_clients`` others open is refused. (A handshake's success event does not say
which connection it is, so connections still in their handshake count too: when many
connect at once near the limit, some are refused.) libzmq takes a refused handshake
as final: that client socket does not try again. With CURVE, the rules are the
allow-lists (``security.py``).
"""

from __future__ import annotations

import time

import zmq

from zdps.daemon.monitors import SocketEvent, SocketMonitor
from zdps.daemon.security import CurveSecurity
from zdps.daemon.zap import CLIENT_DOMAIN, Refusal, Rule, ZapHandler
from zdps.wire.errors import E_TOO_MANY_CLIENTS


class Gate:
    """The ZAP handler and the limits it applies."""

    def __init__(self, ctx: zmq.Context, security: CurveSecurity | None, max_clients: int) -> None:
        self.security = security
        self.max_clients = max_clients
        self.open: set[int] = set()  # client connections, by file descriptor
        self._monitors: list[SocketMonitor] = []
        rules = security.rules() if security is not None else {}
        rules.setdefault(CLIENT_DOMAIN, Rule("", None))  # plain clients
        self.zap = ZapHandler(ctx, rules, self._admit)  # bound before any socket asks it

    def client_options(self) -> dict[str, bytes]:
        """What a plain client socket needs to ask ZAP (CURVE ones have their own)."""
        return {"zap_domain": CLIENT_DOMAIN}

    def count(self, monitor: SocketMonitor) -> None:
        """Count the connections of a client socket."""
        monitor.listeners.append(self._on_event)
        self._monitors.append(monitor)

    def _on_event(self, event: SocketEvent, _now: float) -> None:
        if event.kind == zmq.EVENT_ACCEPTED:
            self.open.add(event.value)
        elif event.kind == zmq.EVENT_DISCONNECTED:
            self.open.discard(event.value)

    def _admit(self, domain: bytes) -> tuple[str, str] | None:
        if domain != CLIENT_DOMAIN:
            return None
        now = time.monotonic()
        for monitor in self._monitors:  # connections closed since the last turn go first
            monitor.pump(now)
        if len(self.open) > self.max_clients:
            return E_TOO_MANY_CLIENTS, f"already {self.max_clients} client connections"
        return None

    def refusals(self, ready: dict) -> list[Refusal]:
        """Answer the handshakes waiting for ZAP; (code, why, where) for each connection
        refused since the last call, by ZAP or in a CURVE handshake that failed first."""
        refused = [] if self.security is None else self.security.failures()
        if self.zap.socket in ready:
            refused += self.zap.serve()
        return refused

    def close(self) -> None:
        self.zap.close()
