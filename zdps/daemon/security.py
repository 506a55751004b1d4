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

import uuid
from collections.abc import Callable
from typing import Any

import zmq

from zdps.core.log_events import LogEvent, log_event
from zdps.daemon.polling import drain
from zdps.daemon.zap import CLIENT_DOMAIN, CLUSTER_DOMAIN, ZapHandler
from zdps.keys import AllowList, CurveClient, KeyFileError, NodeKeys


class CurveSecurity:
    """The node's keys, its ZAP handler, and the keys of each link it dials."""

    def __init__(
        self,
        ctx: zmq.Context,
        keys: NodeKeys,
        seed_nodes: dict[str, str],
        node_at: Callable[[str], str | None],
        clients: AllowList | None = None,
    ) -> None:
        self.keys = keys
        self.clients = clients  # curve_clients: None leaves the API and PUBs plain
        rules = {CLUSTER_DOMAIN: ("curve_peers", keys.allowed)}
        if clients is not None:
            rules[CLIENT_DOMAIN] = ("curve_clients", clients.node_of)
        self.zap = ZapHandler(ctx, rules)  # bound before any socket that asks it
        self._seed_nodes = seed_nodes  # endpoint -> node, from the configuration
        self._node_at = node_at  # endpoint -> node, from membership
        self.monitors: list[zmq.Socket] = []  # failed handshakes, per socket watched

    def watch(self, sock: zmq.Socket) -> zmq.Socket:
        """Monitor a CURVE socket for handshakes that fail before ZAP is asked (a
        plain-text peer, garbage): those are refusals too. Returns the monitor socket.

        libzmq keeps one monitor per socket: with ``log_level = debug`` the debug log's
        monitor of the API and PUB sockets (logs.py) replaces this one there, and those
        failures go uncounted (ZAP's refusals are still counted)."""
        address = f"inproc://zdps-curve-monitor-{uuid.uuid4().hex}"  # not pyzmq's shared one
        sock.monitor(address, HANDSHAKE_FAILED)
        monitor = sock.context.socket(zmq.PAIR)
        monitor.connect(address)
        self.monitors.append(monitor)
        return monitor

    def refusals(self, ready: dict) -> list[tuple[str, str]]:
        """Answer the handshakes waiting for ZAP; (why, where) for each connection refused
        since the last call (by ZAP, or in a handshake that failed before ZAP was asked)."""
        refused = []
        if self.zap.socket in ready:
            refused += [(why, f"from {address}") for address, why in self.zap.serve()]
        for monitor in self.monitors:
            if monitor in ready:
                refused += [_failure(e) for e in drain(monitor, monitor.recv_multipart)]
        return refused

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
        """Read the allow-list again (SIGHUP); the log event that says how it went (the
        old list is kept if the new one cannot be read). Connections already made stay;
        new handshakes use the new list."""
        peers, clients = self.keys.peers, self.clients
        try:
            peers.load()
            if clients is not None:
                clients.load()
        except KeyFileError as exc:
            return log_event("curve_peers_kept", "error", why=str(exc), keys=len(peers.names))
        return log_event("curve_peers_reloaded", keys=len(peers.names), clients=_count(clients))

    @staticmethod
    def peer_of(frame: zmq.Frame) -> str:
        """The node whose key the connection that sent ``frame`` authenticated."""
        return frame.get("User-Id")

    def close(self) -> None:
        self.zap.close()
        for monitor in self.monitors:
            monitor.close(0)


def _count(clients: AllowList | None) -> int | str:
    return "-" if clients is None else len(clients.names)


HANDSHAKE_FAILED = zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
_PROTOCOL_ERRORS = {
    zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH: "it spoke plain text, not CURVE",
    zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC: "its CURVE handshake did not decrypt",
    zmq.PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE: "its CURVE key exchange failed",
}


def _failure(event: list[bytes]) -> tuple[str, str]:
    """A monitor event (6 bytes: event, value; then the endpoint) in words."""
    head = event[0] if event and len(event[0]) >= 6 else bytes(6)
    kind, value = int.from_bytes(head[:2], "little"), int.from_bytes(head[2:6], "little")
    endpoint = event[1].decode(errors="replace") if len(event) > 1 else "?"
    if kind == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        why = f"it ended during the handshake (errno {value})"
    else:
        why = _PROTOCOL_ERRORS.get(value, f"its handshake failed (protocol error {value:#x})")
    return why, f"at {endpoint}"
