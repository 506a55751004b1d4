"""The members of durable consumers on this node (docs/PROTOCOL.md §8.6).

A member is one client connection that sent ``consume``; like a queue group's member it
is counted in the scope overlay under the consumer's key (queues.py ``add``), so that the
owner knows how many members each node has. The owner sends a node its members' messages
(``consumer_msg``); the node splits them among its members, one contiguous share each,
and pushes each share (``cmsg``). A member's verdicts (``cack``) go to each topic's owner
(``consumer_ack``). What no member here takes, and a verdict that finds no owner, are
not lost: the owner sends the message again after ``ack_wait``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from zdps.core.flow import FlowControl
from zdps.core.outbox import Outbox
from zdps.core.queues import QueueGroups
from zdps.core.ring import HashRing
from zdps.topics import InvalidTopic, consumer_key
from zdps.wire.consumers import (
    API_CONSUMER_MSG,
    Consume,
    ConsumerAck,
    ConsumerAckEntry,
    ConsumerMsg,
)
from zdps.wire.errors import E_MALFORMED, E_TOO_MANY_GROUPS

OwnerAcks = Callable[[str, ConsumerAck, float, Outbox], None]  # verdicts for consumers here


@dataclass(slots=True)
class ConsumerMembers:
    """This node's members of durable consumers: their joins, messages and verdicts."""

    node: str
    ring: HashRing
    members: QueueGroups  # a consumer's key, as a queue group's
    endpoint_of: Callable[[str], str | None]
    flow: FlowControl
    bad_input: Callable[[str, str], None]
    owner_acks: OwnerAcks  # the verdicts on consumers this node owns

    def consume(self, client: bytes, ref: int, op: Consume, _now: float, out: Outbox) -> None:
        """``consume``: ``client`` becomes a member of the consumer."""
        if self.members.add(client, op.key, out):
            out.reply(client, ref, True)
        else:
            why = f"consumer {op.name!r}: already {self.members.max_groups} groups here"
            out.fail(client, ref, E_TOO_MANY_GROUPS, why)

    def on_consumer_msg(self, sender: str, message: ConsumerMsg, now: float, out: Outbox) -> None:
        """Messages an owner sent for our members: one contiguous share per member, in
        turn, one ``cmsg`` frame each."""
        runs: dict[bytes, list] = {}  # a consumer's key -> its messages
        keys: dict[tuple[str, str], bytes] = {}
        for entry in message.entries:
            topic, name = entry[0], entry[1]
            key = keys.get((topic, name))
            if key is None:
                try:
                    key = keys[topic, name] = consumer_key(name.encode(), topic.encode())
                except InvalidTopic as exc:  # no consumer has it: only a faulty peer's
                    self.bad_input(E_MALFORMED, f"consumer_msg from {sender}: {exc}")
                    continue
                runs[key] = []
            runs[key].append(entry)
        for key, entries in runs.items():
            # No member left here: they go again after ack_wait.
            for member, start, stop in self.members.shares(key, len(entries)):
                out.push(member, key, [API_CONSUMER_MSG, entries[start:stop]], 0)
        if sender != self.node:
            self.flow.processed(sender, len(message.entries))

    def verdicts(self, entries: list[ConsumerAckEntry], now: float, out: Outbox) -> None:
        """A member's ``cack`` frame: each verdict to its topic's owner."""
        local, owners = [], {}
        for entry in entries:
            owner = owners.get(entry.topic)
            if owner is None:
                owner = owners[entry.topic] = self.ring.owner(entry.topic)
            if owner == self.node:
                local.append(entry)
                continue
            endpoint = self.endpoint_of(owner) if owner else None
            if endpoint is not None:  # else: unacked, it goes again after ack_wait
                out.entry(endpoint, ConsumerAck, entry)
        if local:
            self.owner_acks(self.node, ConsumerAck(local), now, out)
