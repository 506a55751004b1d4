"""Peers this node cannot work with (docs/PROTOCOL.md §11): refused, logged, told why.

Every hello says which protocol version its sender speaks and which message kinds. A
hello from a node of another version, or one that lacks a kind this node needs, is not
admitted: this node logs ``incompatible_peer`` and answers (at most once per
REFUSE_EVERY per endpoint) with a hello whose ``refused`` says why, so that the other
node logs it too (``refused_by``). An envelope of another version is not decoded at
all, but its hello is found by the layout every version keeps (``peek_hello``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zdps.core.log_events import log_event
from zdps.core.membership_actions import Action, Send
from zdps.wire.codec import PROTOCOL_VERSION
from zdps.wire.gossip import Hello
from zdps.wire.messages import SPOKEN, peek_hello

REFUSE_EVERY = 30.0  # seconds between two refusals sent to one endpoint
LOG_EVERY = 5.0
MAX_ANSWERED = 1000  # endpoints remembered; beyond, forgotten at once


@dataclass(slots=True)
class Compatibility:
    """Refusals for one node, advertised at ``endpoint``."""

    endpoint: str
    _answered: dict[str, float] = field(default_factory=dict)  # endpoint -> when

    def refuse(self, node: str, hello: Hello, why: str, now: float) -> list[Action]:
        """``node`` said ``hello`` and cannot be a peer: log it, and tell it why."""
        advertise = hello.advertise
        actions: list[Action] = [
            log_event(
                "incompatible_peer", "warning", every=LOG_EVERY,
                node=node, endpoint=advertise, why=why,
            )
        ]  # fmt: skip
        last = self._answered.get(advertise)
        if hello.reply and (last is None or now - last >= REFUSE_EVERY):
            if len(self._answered) >= MAX_ANSWERED:
                self._answered.clear()
            self._answered[advertise] = now
            answer = Hello(
                self.endpoint, {}, advertise, False, echo=hello.dialed,
                protocol=PROTOCOL_VERSION, kinds=SPOKEN, refused=why,
            )  # fmt: skip
            actions.append(Send(advertise, answer))
        return actions

    def other_version(self, frame: bytes, now: float) -> list[Action]:
        """An envelope whose version is not ours: refuse the hello in it, if any."""
        peeked = peek_hello(frame)
        if peeked is None:
            return []
        sender, version, hello = peeked
        why = f"it speaks protocol {version!r}, this node {PROTOCOL_VERSION}"
        return self.refuse(sender, hello, why, now)

    @staticmethod
    def refused_by(node: str, hello: Hello) -> list[Action]:
        """``node`` will not have this node as a peer (its hello says why)."""
        return [log_event("refused_by", "error", every=LOG_EVERY, node=node, why=hello.refused)]
