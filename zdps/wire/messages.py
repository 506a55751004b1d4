"""Every node-to-node message kind, listed once: the protocol's vocabulary (§3.3).

ONLY APPEND TO ``NODE_MESSAGES``: the order is the order in which the kinds joined the
protocol, and nothing may depend on a kind being absent. ``decode_message`` turns one
raw ``[kind, body]`` of an envelope into its typed message or raises ProtocolError.
A message is exactly those two elements: new fields go into map bodies (§11).
"""

from __future__ import annotations

from typing import Any, Final

from zdps.wire.codec import NodeMessage
from zdps.wire.data import (
    Ack,
    Close,
    Closed,
    Configure,
    Consumed,
    Fanout,
    Forward,
    Handoff,
    Nack,
    Store,
    Stored,
)
from zdps.wire.errors import E_UNKNOWN_KIND, ProtocolError, malformed
from zdps.wire.gossip import Bye, Hello, Peers, Ping, Resync, Sync, Update
from zdps.wire.probes import Alive, Dead, Probe, ProbeAck, ProbeNack, ProbeReq, Suspect
from zdps.wire.requests import Barrier, BarrierOk, History, HistoryRep

NODE_MESSAGES: Final[tuple[type[NodeMessage], ...]] = (
    Hello,
    Peers,
    Ping,
    Bye,
    Sync,
    Update,
    Barrier,
    BarrierOk,
    Forward,
    Fanout,
    Ack,
    Nack,
    Close,
    Closed,
    Consumed,
    Resync,
    Probe,
    ProbeReq,
    ProbeAck,
    ProbeNack,
    Suspect,
    Alive,
    Dead,
    Store,
    Stored,
    Handoff,
    History,
    HistoryRep,
    Configure,
)

BY_KIND: Final[dict[str, type[NodeMessage]]] = {cls.KIND: cls for cls in NODE_MESSAGES}
MEMBERSHIP_KINDS: Final = frozenset(cls.KIND for cls in NODE_MESSAGES if cls.MEMBERSHIP)


def message_kind(raw: Any) -> str:
    """The kind of one raw message of an envelope, or ProtocolError."""
    if type(raw) is not list or not raw:
        raise malformed("a message is not a non-empty array")
    kind = raw[0]
    if type(kind) is not str:
        raise malformed("a message kind is not a string")
    return kind


def decode_message(raw: Any) -> NodeMessage:
    """The typed message for ``[kind, body]``; unknown kinds are ``unknown_kind``."""
    kind = message_kind(raw)
    cls = BY_KIND.get(kind)
    if cls is None:
        raise ProtocolError(E_UNKNOWN_KIND, f"unknown message kind {kind[:32]!r}")
    if len(raw) != 2:
        raise malformed(f"a {kind} message is [kind, body]")
    return cls.decode(raw[1])
