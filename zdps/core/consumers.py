"""Durable consumers (docs/PROTOCOL.md §8.6): kept at the topic's owner, fed from history.

At the owner each consumer is a ``Consumer`` (consumer.py). When the topic gets new
messages, a verdict arrives or a pending message is due again, the owner hands out what
it may at the end of the turn (so that a turn's verdicts make one batch), to the nodes
with members in turn and in proportion to their members (as queue groups do, queues.py),
one contiguous run per member; the members' nodes pass them on and relay their verdicts
(consumer_members.py). A message dead-lettered goes to ``TOPIC.NAME.dead``. History
keeps what a consumer still needs (history.py ``hold``), as of the last timer tick: a
consumer's floor only moves forward, so a hold a tick old keeps more, never less. Ops
reach the owner from any node (``owner_req``, forwards.py).

Succession, the states at the replicas and the new owner, and what history keeps for
them: consumer_succession.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from zdps.core.consumer import Consumer, ConsumerConfig, Handout
from zdps.core.consumer_members import ConsumerMembers
from zdps.core.consumer_succession import Durable, Succession
from zdps.core.flow import FlowControl
from zdps.core.forwards import Forwards
from zdps.core.history import HistoryStore
from zdps.core.outbox import Outbox
from zdps.core.overlay import Overlay
from zdps.core.part import Part
from zdps.core.queues import QueueGroups, queue_target
from zdps.core.replication import Replication
from zdps.core.ring import HashRing
from zdps.wire.answers import error_fields, error_result
from zdps.wire.batches import pack_batch
from zdps.wire.consumers import (
    ACK,
    NAK,
    START_ALL,
    START_NEW,
    TERM,
    ConsumerAck,
    ConsumerCreate,
    ConsumerDelete,
    ConsumerInfo,
    ConsumerList,
    ConsumerMsg,
    ConsumerState,
    ConsumerStateEntry,
    OwnerRep,
    OwnerReq,
)
from zdps.wire.errors import (
    E_CONSUMER_EXISTS,
    E_NO_CONSUMER,
)

HANDOUTS = 256  # messages one consumer hands out at a time, at most
COUNTED_AS = {ACK: "acked", NAK: "nakked", TERM: "termed"}  # verdicts in a consumer's counts
Publish = Callable[[str, bytes, float, Outbox], None]  # topic, batch of one: a dead letter
OwnerOp = ConsumerCreate | ConsumerInfo | ConsumerDelete | ConsumerList


@dataclass(slots=True)
class Consumers(Succession, Part):
    """The durable consumers this node owns, and the requests and acks it relays."""

    node: str
    ring: HashRing
    overlay: Overlay
    history: HistoryStore
    members: QueueGroups  # this node's members (a consumer's key, like a queue group's)
    endpoint_of: Callable[[str], str | None]
    flow: FlowControl
    replication: Replication
    publish: Publish
    bad_input: Callable[[str, str], None]
    timeout: float = 8.0
    _durables: dict[str, dict[str, Durable]] = field(default_factory=dict)  # topic -> name ->
    _forwards: Forwards = field(init=False)
    _changed: set[tuple[str, str]] = field(default_factory=set)  # owned, to replicate
    _successions: dict[tuple[str, str], ConsumerStateEntry] = field(default_factory=dict)
    _woken: dict[tuple[str, str], Durable] = field(default_factory=dict)  # to pump this turn

    here: ConsumerMembers = field(init=False)

    def __post_init__(self) -> None:
        self._forwards = Forwards(self.timeout)
        self.here = ConsumerMembers(
            self.node, self.ring, self.members, self.endpoint_of, self.flow, self.bad_input,
            self.on_consumer_ack,
        )  # fmt: skip

    def handlers(self) -> dict[type, Callable]:
        """The node messages this part takes, by kind."""
        return {
            OwnerReq: self.on_owner_req,
            OwnerRep: self.on_owner_rep,
            ConsumerMsg: self.here.on_consumer_msg,
            ConsumerAck: self.on_consumer_ack,
            ConsumerState: self.on_consumer_state,
        }

    # ------------------------------------------------------------------ requests

    def request(self, client: bytes, ref: int, op: OwnerOp, now: float, out: Outbox) -> None:
        """A client's consumer op: answered here if we own the topic, else forwarded."""
        owner = self.ring.owner(op.topic)
        if owner == self.node:
            _reply(out, client, ref, *self._answer(op, now, out))
            return
        endpoint = self.endpoint_of(owner) if owner else None
        req_id = self._forwards.forward(client, ref, owner, endpoint, now, out)
        if req_id is not None:
            out.send(endpoint, OwnerReq(req_id, op))  # type: ignore[arg-type]

    def on_owner_req(self, sender: str, message: OwnerReq, now: float, out: Outbox) -> None:
        ok, result = self._answer(message.op, now, out)
        endpoint = self.endpoint_of(sender)
        if endpoint is not None:
            out.send(endpoint, OwnerRep(message.req_id, ok, result))

    def on_owner_rep(self, sender: str, message: OwnerRep, now: float, out: Outbox) -> None:
        to = self._forwards.answered(sender, message.req_id)
        if to is not None:
            _reply(out, *to, message.ok, message.result)

    def _answer(self, op: OwnerOp, now: float, out: Outbox) -> tuple[bool, Any]:
        durables = self._durables.get(op.topic, {})
        if isinstance(op, ConsumerList):
            return True, sorted(durables)
        if isinstance(op, ConsumerCreate):
            return self._create(op, now, out)
        durable = durables.get(op.name)
        if durable is None:
            return False, error_result(E_NO_CONSUMER, f"no consumer {op.name!r} of {op.topic!r}")
        if isinstance(op, ConsumerDelete):
            del durables[op.name]
            if not durables:
                del self._durables[op.topic]
            self._hold(op.topic)
            self._changed.add((op.topic, op.name))
            self._replicate(out)  # at once: a successor must not bring it back
            return True, True
        assert isinstance(op, ConsumerInfo)
        return True, self._info(durable)

    def _create(self, op: ConsumerCreate, now: float, out: Outbox) -> tuple[bool, Any]:
        durables = self._durables.setdefault(op.topic, {})
        durable = durables.get(op.name)
        if durable is not None:
            if durable.settings != op:
                why = f"consumer {op.name!r} of {op.topic!r} exists with other settings"
                return False, error_result(E_CONSUMER_EXISTS, why)
            return True, self._info(durable)
        config = ConsumerConfig(op.ack_wait, op.max_deliver, op.max_pending)
        newest, epochs = self.history.newest(op.topic), self.history.epochs(op.topic)
        if op.start == START_NEW:  # what history holds now is behind it, every epoch
            cursor, marks = newest, epochs
        elif op.start == START_ALL:
            cursor, marks = (0, 0), {}
        else:
            cursor = (newest[0], op.start - 1)  # type: ignore[operator]
            marks = {e: s for e, s in epochs.items() if e < cursor[0]} | {cursor[0]: cursor[1]}
        durable = durables[op.name] = Durable(op, Consumer(config, cursor, marks=marks))
        self._changed.add((op.topic, op.name))
        self._replicate(out)  # at once: an owner that dies next must not take it along
        self._hold(op.topic)
        self._woken[op.topic, op.name] = durable
        return True, self._info(durable)

    def _info(self, durable: Durable) -> dict[str, Any]:
        state = durable.state
        return {
            **durable.settings.args(),
            "cursor": list(state.cursor),
            "pending": len(state.pending),
            "lost": state.lost,
            "counts": dict(durable.counts),
            "members": self.overlay.members(durable.key),
        }

    # ------------------------------------------------------------------ the owner

    def published(self, topic: str, now: float, out: Outbox) -> None:
        """New messages of ``topic``: its consumers may hand them out at the end of the
        turn (a lookup, for the topics that have none: every batch an owner sequences
        comes here)."""
        durables = self._durables.get(topic)
        if durables:
            for name, durable in durables.items():
                self._woken[topic, name] = durable

    def release(self, now: float, out: Outbox) -> None:
        """At the end of a turn, the consumers that got messages or verdicts in it hand
        out what they may: once per turn, so that a turn's verdicts make one batch."""
        while self._woken:  # a dead letter may wake the dead-letter topic's consumers
            woken, self._woken = self._woken, {}
            for (topic, name), durable in woken.items():
                if self._durables.get(topic, {}).get(name) is durable:  # not deleted, nor moved
                    self._pump(topic, durable, now, out)

    def _pump(self, topic: str, durable: Durable, now: float, out: Outbox) -> None:
        members = self.overlay.members(durable.key)
        if not members:
            return  # nobody to give them to: they wait in history
        state, name = durable.state, durable.settings.name
        fetch = lambda after, limit: self.history.fetch(topic, after[0], after[1], limit)  # noqa: E731
        handouts, dead = state.handouts(fetch, now, HANDOUTS), state.take_dead()
        if handouts or dead:
            self._changed.add((topic, name))
        if handouts:
            redelivered = sum(h.deliveries > 1 for h in handouts)
            durable.count("redelivered", redelivered)
            durable.count("delivered", len(handouts) - redelivered)
            self._hand_out(topic, durable, handouts, members, now, out)
        for position in dead:
            durable.count("dead_lettered")
            payload = self.history.fetch(topic, position[0], position[1] - 1, 1)
            if payload and (payload[0][0], payload[0][1]) == position:
                dead_topic = f"{topic}.{durable.settings.name}.dead"
                self.publish(dead_topic, pack_batch([payload[0][2]]), now, out)

    def _hand_out(
        self,
        topic: str,
        durable: Durable,
        handouts: list[Handout],
        members: dict[str, int],
        now: float,
        out: Outbox,
    ) -> None:
        """The handouts to the nodes with members, in turn and in proportion to their
        members: one contiguous run per member, so each node gets one batch."""
        target, name = queue_target(durable.key, members), durable.settings.name
        size = math.ceil(len(handouts) / target.bounds[-1])
        runs: dict[str, list] = {}
        for start in range(0, len(handouts), size):
            node = target.node(durable.turn)
            durable.turn += 1
            runs.setdefault(node, []).extend(
                (topic, name, *h.position, h.deliveries, h.payload)
                for h in handouts[start : start + size]
            )
        for node, entries in runs.items():
            if node == self.node:
                self.here.on_consumer_msg(self.node, ConsumerMsg(entries), now, out)
                continue
            endpoint = self.endpoint_of(node)
            if endpoint is not None:  # else: due again after ack_wait
                out.send(endpoint, ConsumerMsg(entries))
                self.flow.sent(node, len(entries))

    def on_consumer_ack(self, sender: str, message: ConsumerAck, now: float, out: Outbox) -> None:
        """Members' verdicts; a member's come in runs of one consumer: one lookup a run."""
        key, durable = None, None
        for topic, name, epoch, seq, verdict, deliveries in message.entries:
            if (topic, name) != key:
                key, durable = (topic, name), self._durables.get(topic, {}).get(name)
                if durable is not None:  # else deleted, or moved: its new owner sends it again
                    self._woken[key] = durable
                    self._changed.add(key)
            if durable is None:
                continue
            state, position = durable.state, (epoch, seq)
            if state.nak(position, now, deliveries) if verdict == NAK else state.ack(position):
                durable.count(COUNTED_AS[verdict])

    def expire(self, now: float, out: Outbox) -> None:
        """Each timer tick: what is due again goes, history keeps what the consumers
        still need, and changed states go to the replicas."""
        for topic, durables in self._durables.items():
            newest = self.history.newest(topic)
            for name, durable in durables.items():
                state = durable.state
                waiting = state.cursor < newest and len(state.pending) < state.config.max_pending
                if waiting or state.next_due() <= now:  # members may have come meanwhile
                    self._woken[topic, name] = durable
            self._hold(topic)
        self._replicate(out)
        self._forwards.expire(now, out)

    def peer_down(self, node: str, out: Outbox) -> None:
        self._forwards.peer_down(node, out)


def _reply(out: Outbox, client: bytes, ref: int, ok: bool, result: Any) -> None:
    if ok:
        out.reply(client, ref, result)
    else:
        out.fail(client, ref, *error_fields(result))
