"""Bad input, as the protocol names it: ``ProtocolError`` and the error codes.

Only ``ProtocolError`` means "the other side broke the protocol". A decoder raises it
for anything that does not follow docs/PROTOCOL.md; the node counts it by ``code`` and
carries on. Any other exception is a bug in zdps and must fail a test (as in h11).
"""

from __future__ import annotations

from typing import Final

# Error codes carried by nacks and failed replies (docs/PROTOCOL.md §8.4).
E_INVALID_TOPIC: Final = "invalid_topic"
E_TOO_LARGE: Final = "too_large"
E_MALFORMED: Final = "malformed"
E_BAD_VERSION: Final = "bad_version"
E_UNKNOWN_OP: Final = "unknown_op"
E_UNKNOWN_KIND: Final = "unknown_kind"
E_WRONG_SCOPE: Final = "wrong_scope"
E_NO_ROUTE: Final = "no_route"
E_OWNER_LOST: Final = "owner_lost"
E_TIMEOUT: Final = "timeout"
E_TOO_MANY_HOPS: Final = "too_many_hops"
E_NO_REPLICA: Final = "no_replica"
E_REPLICA_LOST: Final = "replica_lost"
E_FORBIDDEN: Final = "forbidden"  # the client's permissions do not allow it (§2.2)
E_RATE_LIMITED: Final = "rate_limited"  # over max_publish_rate (§10)
E_DRAINING: Final = "draining"  # the node is leaving: publish through another one (§4.5)
E_NO_CONSUMER: Final = "no_consumer"  # an op on a durable consumer the owner does not have
E_CONSUMER_EXISTS: Final = "consumer_exists"  # created again with other settings
# Counted only, never sent (docs/PROTOCOL.md §2.1): a connection refused by CURVE, an
# envelope whose sender is not the node its CURVE key names, a peer with no allowed key.
E_UNAUTHENTICATED: Final = "unauthenticated"
E_SPOOFED: Final = "spoofed_sender"
E_NO_PEER_KEY: Final = "no_peer_key"
# a local subscription over max_groups (counted), or a queue_join (answered)
E_TOO_MANY_GROUPS: Final = "too_many_groups"
E_TOO_MANY_SUBSCRIPTIONS: Final = "too_many_subscriptions"  # over max_subscriptions, one SUB
E_TOO_MANY_PEERS: Final = "too_many_peers"  # a node not admitted: max_peers are known
E_TOO_MANY_CLIENTS: Final = "too_many_clients"  # a connection refused: max_clients are open
# The codes that only count bad input from peers in ``status.errors``, never sent.
COUNTED_ONLY: Final = (
    E_WRONG_SCOPE, E_UNKNOWN_KIND, E_UNAUTHENTICATED, E_SPOOFED, E_NO_PEER_KEY,
    E_TOO_MANY_SUBSCRIPTIONS, E_TOO_MANY_PEERS, E_TOO_MANY_CLIENTS,
)  # fmt: skip


class ProtocolError(Exception):
    """Input that does not follow the protocol; ``code`` is one of the E_* names."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def malformed(why: str) -> ProtocolError:
    """The usual bad-input error: ``raise malformed("fwd entries are ...")``."""
    return ProtocolError(E_MALFORMED, why)
