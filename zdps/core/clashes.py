"""Another process with this node's id (docs/PROTOCOL.md §4.2): a clash, and its proof.

A hello from this node's id with another incarnation at another endpoint is either a
configuration mistake (a config file copied with its ``node_id``) or, without CURVE, a
stranger's spoof: anyone who reaches the cluster socket can say anything. Both are
logged and answered. Only proof makes the node started later stop (node.py): a hello
that carries, as ``answer``, the ``challenge`` this node sent to the endpoint that
hello advertises. Whoever cannot receive at that endpoint cannot give it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from zdps.core.membership_actions import Clash
from zdps.wire.gossip import Hello

MAX_ASKED = 1000  # endpoints challenged that are remembered; beyond, all are forgotten
CLASH_REFUSAL = 30.0  # seconds after its start in which a node refuses to share its id


def verdict(clash: Clash, node: str, incarnation: int, uptime: float) -> tuple[str | None, str]:
    """What a node does of a clash: ``(refusal, action)``. It stops (a refusal to run)
    only if it is the one started later, just started, and the other proved it runs at
    its endpoint; else it asks for proof, or tells the operator to rename one."""
    if not clash.proven:
        return None, "asked it to prove it"
    if clash.incarnation < incarnation and uptime < CLASH_REFUSAL:
        refusal = (
            f"node id '{node}' is already used by the node at {clash.endpoint}: give "
            "this node another one (node_id, --node-id; the default is the host name)"
        )
        return refusal, "this node stops"
    return None, "give one of them another node_id"


def _token() -> str:
    return secrets.token_hex(8)


@dataclass(slots=True)
class IdClashes:
    """Endpoints where a process claims this node's id, and the challenges sent there."""

    token: Callable[[], str] = _token
    seen: dict[str, tuple[int, float]] = field(default_factory=dict)  # endpoint: (inc, at)
    _asked: dict[str, str] = field(default_factory=dict)  # endpoint: the challenge sent
    _proven: set[str] = field(default_factory=set)

    def challenge(self, endpoint: str) -> str:
        """The challenge for ``endpoint``: made once, sent with every hello asking there."""
        token = self._asked.get(endpoint)
        if token is None:
            if len(self._asked) >= MAX_ASKED:
                self._asked.clear()
            token = self._asked[endpoint] = self.token()
        return token

    def on_hello(
        self, endpoint: str, incarnation: int, hello: Hello, now: float
    ) -> tuple[Clash | None, dict[str, Any] | None]:
        """A hello from this node's id, advertising ``endpoint``: the clash to act on
        (when first seen, and when proven), and the hello fields to answer with (its
        challenge answered; ours sent, once), or None when no answer is due."""
        first = endpoint not in self.seen
        self.seen[endpoint] = (incarnation, now)
        proven = (
            hello.answer is not None
            and hello.answer == self._asked.get(endpoint)
            and endpoint not in self._proven
        )
        if proven:
            self._proven.add(endpoint)
        clash = Clash(endpoint, incarnation, first, proven) if first or proven else None
        if not (hello.reply or first or hello.challenge is not None):
            return clash, None
        asked = endpoint in self._asked
        challenge = None if asked else self.challenge(endpoint)
        return clash, {"reply": not asked, "challenge": challenge, "answer": hello.challenge}
