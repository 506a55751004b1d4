"""The zdps wire protocol, version 1; docs/PROTOCOL.md is its specification.

``codec`` frames envelopes and API frames, ``messages`` lists every node-to-node kind
(``gossip``, ``probes``, ``data``, ``requests`` define them), ``api`` is the client
API and ``delivery`` the local PUB. The kind names below are the classes' ``KIND``s,
for code that matches on raw arrays (tests, tools).
"""

from zdps.wire import data, gossip, probes, requests
from zdps.wire.api import API_ACK, API_EVENT, API_NACK, API_PUBLISH, API_REPLY, API_REQUEST
from zdps.wire.codec import (
    PROTOCOL_VERSION,
    decode_api,
    decode_envelope,
    encode_api,
    encode_envelope,
    pack,
    unpack,
)
from zdps.wire.data import ACK_LEVELS, LEVEL_NONE, LEVEL_OWNER, LEVEL_REPLICATED
from zdps.wire.delivery import closed_header, message_header
from zdps.wire.errors import (
    E_BAD_VERSION,
    E_INVALID_TOPIC,
    E_MALFORMED,
    E_NO_REPLICA,
    E_NO_ROUTE,
    E_OWNER_LOST,
    E_REPLICA_LOST,
    E_TIMEOUT,
    E_TOO_LARGE,
    E_TOO_MANY_HOPS,
    E_UNKNOWN_KIND,
    E_UNKNOWN_OP,
    E_WRONG_SCOPE,
    ProtocolError,
)

HELLO = gossip.Hello.KIND
PEERS = gossip.Peers.KIND
PING = gossip.Ping.KIND
BYE = gossip.Bye.KIND
SYNC = gossip.Sync.KIND
UPDATE = gossip.Update.KIND
RESYNC = gossip.Resync.KIND
BARRIER = requests.Barrier.KIND
BARRIER_OK = requests.BarrierOk.KIND
HISTORY = requests.History.KIND
HISTORY_REPLY = requests.HistoryRep.KIND
FORWARD = data.Forward.KIND
FANOUT = data.Fanout.KIND
ACK = data.Ack.KIND
NACK = data.Nack.KIND
CLOSE = data.Close.KIND
CLOSED = data.Closed.KIND
CONSUMED = data.Consumed.KIND
STORE = data.Store.KIND
STORED = data.Stored.KIND
HANDOFF = data.Handoff.KIND
CONFIGURE = data.Configure.KIND
QUEUED = data.Queued.KIND
PROBE = probes.Probe.KIND
PROBE_REQ = probes.ProbeReq.KIND
PROBE_ACK = probes.ProbeAck.KIND
PROBE_NACK = probes.ProbeNack.KIND
SUSPECT = probes.Suspect.KIND
ALIVE = probes.Alive.KIND
DEAD = probes.Dead.KIND

__all__ = [
    "ACK",
    "ACK_LEVELS",
    "ALIVE",
    "API_ACK",
    "API_EVENT",
    "API_NACK",
    "API_PUBLISH",
    "API_REPLY",
    "API_REQUEST",
    "BARRIER",
    "BARRIER_OK",
    "BYE",
    "CLOSE",
    "CLOSED",
    "CONFIGURE",
    "CONSUMED",
    "DEAD",
    "E_BAD_VERSION",
    "E_INVALID_TOPIC",
    "E_MALFORMED",
    "E_NO_REPLICA",
    "E_NO_ROUTE",
    "E_OWNER_LOST",
    "E_REPLICA_LOST",
    "E_TIMEOUT",
    "E_TOO_LARGE",
    "E_TOO_MANY_HOPS",
    "E_UNKNOWN_KIND",
    "E_UNKNOWN_OP",
    "E_WRONG_SCOPE",
    "FANOUT",
    "FORWARD",
    "HANDOFF",
    "HELLO",
    "HISTORY",
    "HISTORY_REPLY",
    "LEVEL_NONE",
    "LEVEL_OWNER",
    "LEVEL_REPLICATED",
    "NACK",
    "PEERS",
    "PING",
    "PROBE",
    "PROBE_ACK",
    "PROBE_NACK",
    "PROBE_REQ",
    "PROTOCOL_VERSION",
    "QUEUED",
    "RESYNC",
    "STORE",
    "STORED",
    "SUSPECT",
    "SYNC",
    "UPDATE",
    "ProtocolError",
    "closed_header",
    "decode_api",
    "decode_envelope",
    "encode_api",
    "encode_envelope",
    "message_header",
    "pack",
    "unpack",
]
