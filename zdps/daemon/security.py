"""CURVE on the node's sockets and its peer links, as the daemon's loop uses it.

The cluster ROUTER is a CURVE server in the ZAP domain ``zdps-cluster`` and enforces
it; the ZAP handler (``zap.py``) lets in only keys of the allow-list and tells the
ROUTER which node each key belongs to (the connection's User-Id), which must be the
sender every envelope on that connection names. A peer link is dialled only to a node
the allow-list has a key for, expecting that key: the node comes from this node's own
knowledge (a seed's ``NAME@``, a peer's hello), never from a key sent over the wire.
With ``curve_clients``, the API and both PUBs are CURVE servers too, in the domain
``zdps-clients``, open to the client keys of that directory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import zmq

from zdps.core.log_events import LogEvent, log_event
from zdps.core.permissions import Permissions
from zdps.daemon.monitors import HANDSHAKE_FAILED, SocketEvent, SocketMonitor
from zdps.daemon.zap import CLIENT_DOMAIN, CLUSTER_DOMAIN, Refusal, Rule, Rules
from zdps.keys import AllowList, CurveClient, KeyFileError, NodeKeys
from zdps.wire.errors import E_UNAUTHENTICATED


class CurveSecurity:
    """The node's keys, its ZAP rules, and the keys of each link it dials."""

    def __init__(
        self,
        keys: NodeKeys,
        seed_nodes: dict[str, str],
        node_at: Callable[[str], str | None],
        clients: AllowList | None = None,
        load_permissions: Callable[[], Permissions | None] = lambda: None,
    ) -> None:
        self.keys = keys
        self._load_permissions = load_permissions  # raises ValueError (a ConfigError)
        self.permissions = load_permissions()  # per-client topic rules, or None
        self.clients = clients  # curve_clients: None leaves the API and PUBs plain
        self._seed_nodes = seed_nodes  # endpoint -> node, from the configuration
        self._node_at = node_at  # endpoint -> node, from membership
        self._failed: list[tuple[str, str]] = []  # handshakes failed since the last refusals()

    def listen(self, monitor: SocketMonitor) -> None:
        """Count the handshakes on a CURVE socket that fail before ZAP is asked (a
        plain-text peer, garbage): those are refusals too."""
        monitor.listeners.append(self._on_event)

    def _on_event(self, event: SocketEvent, _now: float) -> None:
        if event.kind & HANDSHAKE_FAILED:
            self._failed.append(_failure(event))

    def rules(self) -> Rules:
        """The ZAP rules of the CURVE sockets: node keys, and client keys if listed."""
        rules = {CLUSTER_DOMAIN: Rule("curve_peers", self.keys.allowed)}
        if self.clients is not None:
            rules[CLIENT_DOMAIN] = Rule("curve_clients", self.clients.node_of)
        return rules

    def failures(self) -> list[Refusal]:
        """(code, why, where) of each handshake that failed before ZAP was asked, as the
        monitors pumped so far reported them."""
        failed, self._failed = self._failed, []
        return [(E_UNAUTHENTICATED, why, where) for why, where in failed]

    def server_options(self, domain: bytes = CLUSTER_DOMAIN) -> dict[str, Any]:
        """A bound socket's options: a CURVE server that only ZAP (``domain``) lets in."""
        own = self.keys.own
        return {
            "curve_server": 1,
            "curve_publickey": own.public,
            "curve_secretkey": own.secret,
            "zap_domain": domain,
            "zap_enforce_domain": 1,
        }

    def client_options(self) -> dict[str, Any]:
        """The API's and the PUBs' options: CURVE for listed clients, or none (plain)."""
        return {} if self.clients is None else self.server_options(CLIENT_DOMAIN)

    def client(self, endpoint: str) -> tuple[CurveClient | None, str]:
        """The keys of a link to ``endpoint``, or None and why it must not be dialled."""
        node = self._seed_nodes.get(endpoint) or self._node_at(endpoint)
        if node is None:
            return None, f"no node is known at {endpoint!r}, so no key to expect there"
        server = self.keys.server_key(node)
        if server is None:
            return None, f"{node} (at {endpoint!r}) has no key in curve_peers"
        own = self.keys.own
        assert own.secret is not None  # NodeKeys.load checked it
        return CurveClient(own.public, own.secret, server), ""

    def reload(self) -> LogEvent:
        """Read the allow-lists and the permissions again (SIGHUP); the log event that
        says how it went (the old ones are kept if a new one cannot be read).
        Connections already made stay; new handshakes and frames use the new lists."""
        peers, clients = self.keys.peers, self.clients
        try:
            permissions = self._load_permissions()
            peers.load()
            if clients is not None:
                clients.load()
        except (KeyFileError, ValueError) as exc:
            return log_event("curve_peers_kept", "error", why=str(exc), keys=len(peers.names))
        self.permissions = permissions
        rules = "-" if permissions is None else len(permissions.rules)
        return log_event(
            "curve_peers_reloaded", keys=len(peers.names), clients=_count(clients), rules=rules
        )

    @staticmethod
    def peer_of(frame: zmq.Frame) -> str:
        """The node whose key the connection that sent ``frame`` authenticated."""
        return frame.get("User-Id")


def _count(clients: AllowList | None) -> int | str:
    return "-" if clients is None else len(clients.names)


_PROTOCOL_ERRORS = {
    zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH: "it spoke plain text, not CURVE",
    zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC: "its CURVE handshake did not decrypt",
    zmq.PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE: "its CURVE key exchange failed",
}


def _failure(event: SocketEvent) -> tuple[str, str]:
    """A failed handshake in words, and where."""
    if event.kind == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        why = f"it ended during the handshake (errno {event.value})"
    else:
        why = _PROTOCOL_ERRORS.get(
            event.value, f"its handshake failed (protocol error {event.value:#x})"
        )
    return why, f"at {event.endpoint}"
