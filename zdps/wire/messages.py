"""Every node-to-node message kind, listed once: the protocol's vocabulary (§3.3).

ONLY APPEND TO ``NODE_MESSAGES``: the order is the order in which the kinds joined the
protocol, and nothing may depend on a kind being absent. ``decode_message`` turns one
raw ``[kind, body]`` of an envelope into its typed message or raises ProtocolError.
A message is exactly those two elements: new fields go into map bodies (§11).
"""

from __future__ import annotations

from typing import Any, Final

from zdps.wire.codec import PROTOCOL_VERSION, NodeMessage, unpack
from zdps.wire.consumers import ConsumerAck, ConsumerMsg, ConsumerState, OwnerRep, OwnerReq
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
    Queued,
    Store,
    Stored,
)
from zdps.wire.errors import E_UNKNOWN_KIND, ProtocolError, malformed
from zdps.wire.gossip import Bye, Hello, Peers, Ping, Resync, Sync, SyncPart, Update
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
    Queued,
    OwnerReq,
    OwnerRep,
    ConsumerMsg,
    ConsumerAck,
    ConsumerState,
    SyncPart,
)

BY_KIND: Final[dict[str, type[NodeMessage]]] = {cls.KIND: cls for cls in NODE_MESSAGES}
MEMBERSHIP_KINDS: Final = frozenset(cls.KIND for cls in NODE_MESSAGES if cls.MEMBERSHIP)
SPOKEN: Final = tuple(cls.KIND for cls in NODE_MESSAGES)  # announced in every hello (§11)
# What a peer must speak to be admitted: in version 2, every kind but the optional ones
# added later, which go into SPOKEN only. ``queued`` and ``consumer_msg`` go only to a
# node that announced a member: one that does not speak them never does; a node that
# does not speak ``owner_req`` leaves it unanswered, and the request times out (§11). A
# node that does not speak ``sync_part`` is sent whole syncs (§5).
OPTIONAL: Final = frozenset(
    {Queued.KIND, OwnerReq.KIND, OwnerRep.KIND, ConsumerMsg.KIND, ConsumerAck.KIND}
    | {ConsumerState.KIND, SyncPart.KIND}
)
REQUIRED: Final = frozenset(SPOKEN) - OPTIONAL


def incompatibility(hello: Hello) -> str:
    """Why the sender of ``hello`` cannot be a peer of this node ("" if it can). A hello
    without ``protocol`` or ``kinds`` is from a version-2 node that predates them."""
    if hello.protocol is not None and hello.protocol != PROTOCOL_VERSION:
        return f"it speaks protocol {hello.protocol}, this node {PROTOCOL_VERSION}"
    missing = REQUIRED - set(hello.kinds) if hello.kinds is not None else ()
    return f"it does not speak {', '.join(sorted(missing))}" if missing else ""


def peek_hello(frame: bytes) -> tuple[str, Any, Hello] | None:
    """(sender, version, hello) of an envelope of another protocol version that carries
    a hello, read by the one layout every version keeps (§11): ``[version, scope,
    sender, incarnation, messages]``, a hello as ``["hello", {advertise, ...}]``."""
    try:
        data = unpack(frame)
    except ProtocolError:
        return None
    if type(data) is not list or len(data) < 5 or type(data[2]) is not str or not data[2]:
        return None  # a sender is a non-empty str in every version
    for raw in data[4] if type(data[4]) is list else ():
        if type(raw) is list and len(raw) == 2 and raw[0] == Hello.KIND:
            try:
                return data[2], data[0], Hello.decode(raw[1])
            except ProtocolError:
                return None
    return None


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
