"""A client's session with its node, without IO: refs, answers, and operations as steps.

One session serves one API socket (docs/PROTOCOL.md §8). ``absorb`` takes each frame
the node sends, decoded by ``zdps.wire.api``, and files it with the operation that
awaits it: an outcome for a ref, an event for a watch, a run of acks for a publish
stream. Operations are generators of the typed steps of zdps/client/steps.py, which
``Client`` and ``AsyncClient`` carry out alike; the windowed publishes are in
zdps/client/publishing.py. Time is the session's ``clock``, passed in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from typing import Any

from zdps.client.ledger import StreamLedger
from zdps.client.protocol import (
    PublishError,
    PublishResult,
    RequestError,
    reachable_pub,
    to_bytes,
)
from zdps.client.recovery import Pager, fetching
from zdps.client.steps import (
    Dial,
    Emit,
    Filter,
    Operation,
    Pending,
    Report,
    Request,
    Send,
    Sleep,
    T,
    Wait,
)
from zdps.client.subscription import Inbox, SubscribePlan
from zdps.wire import API_REQUEST, E_TIMEOUT, ProtocolError, decode_api, encode_api
from zdps.wire.answers import Acks, Event, Nacks, Reply, decode_answer
from zdps.wire.api import (
    Info,
    Op,
    Ready,
    Unwatch,
    Watch,
    encode_publish,
    encode_request,
    publish_entry,
)

log = logging.getLogger("zdps.client")


class Session:
    """The state of one client's conversation with its node, and its operations.

    Refs are handed out once per session: publishes and requests share them, so any
    answer names exactly one thing. An outcome nobody awaits (it came after its
    operation timed out, or gave up) is dropped.
    """

    def __init__(self, node: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.node = node  # the API endpoint, named in error messages
        self.clock = clock
        self.next_ref = 1  # the ref the next request or publish gets
        self.awaited: dict[int, Pending] = {}  # ref -> the operation awaiting its outcome
        self.watches: dict[int, Pending] = {}  # watch ref -> the watch its events go to
        self.streams: list[tuple[StreamLedger, Pending]] = []  # publish streams running
        self.outbox: list[bytes] = []  # frames to send only if there is room at once
        self.info_reply: dict[str, Any] | None = None  # the node's ``info``, asked once
        self.last_rx = clock()  # when the node last sent anything
        self.bad_frames = 0  # frames from the node that could not be parsed (skipped)
        self.unconfirmed = 0  # fire-and-forget publishes sent, not yet known to be read

    # ------------------------------------------------------------------ refs

    def ref(self) -> int:
        ref = self.next_ref
        self.next_ref += 1
        return ref

    def reserve(self, count: int) -> int:
        """Take ``count`` consecutive refs; returns the first."""
        ref = self.next_ref
        self.next_ref += count
        return ref

    def forget(self, ref: int, pending: Pending) -> None:
        """Nobody awaits ``ref`` any more: a late outcome is dropped."""
        self.awaited.pop(ref, None)
        pending.outcomes.pop(ref, None)

    @property
    def not_reading(self) -> str:
        return f"cannot send to {self.node}: the node is not reading (down?)"

    # ------------------------------------------------------------------ answers

    def absorb(self, frame: bytes) -> list[Pending]:
        """File one frame from the node; returns the operations it has news for.

        A frame that does not follow the protocol is skipped whole, counted and
        logged; a kind this client does not know is ignored (§11).
        """
        self.last_rx = self.clock()
        try:
            kind, *fields = decode_api(frame)
            answer = decode_answer(kind, fields)
        except ProtocolError as exc:
            self.bad_frames += 1
            log.warning("skipped a bad frame from %s: %s", self.node, exc)
            return []
        if type(answer) is Acks:
            return self._acks(answer)
        if type(answer) is Nacks:
            return self._nacks(answer)
        if type(answer) is Reply:
            outcome = answer.result
            if not answer.ok:
                outcome = RequestError(outcome["code"], outcome["message"])
            return self._outcome(answer.ref, outcome)
        if type(answer) is Event and (watch := self.watches.get(answer.ref)) is not None:
            watch.events.append(answer.body)
            return [watch]
        return []

    def _outcome(self, ref: int, outcome: Any) -> list[Pending]:
        pending = self.awaited.pop(ref, None)
        if pending is None:
            return []
        pending.outcomes[ref] = outcome
        return [pending]

    def _acks(self, answer: Acks) -> list[Pending]:
        # A run of a stream settles its frames at once; only what is left over (late,
        # or another operation's refs) is looked at ref by ref.
        touched: list[Pending] = []
        awaited = self.awaited
        for ref, seq, nodes, subscribers, n in answer.runs:
            taken = 0
            for ledger, pending in self.streams:
                if settled := ledger.settle(ref, n):
                    taken += settled
                    touched.append(pending)
            if taken == n or not awaited:
                continue
            for i in range(n):
                if (pending := awaited.pop(ref + i, None)) is not None:
                    pending.outcomes[ref + i] = PublishResult(seq + i, nodes, subscribers)
                    touched.append(pending)
        return touched

    def _nacks(self, answer: Nacks) -> list[Pending]:
        touched: list[Pending] = []
        for ref, code, message, n in answer.entries:
            error = PublishError(code, message)
            taken = 0
            for ledger, pending in self.streams:
                if settled := ledger.settle(ref, n, error):
                    taken += settled
                    touched.append(pending)
            if taken < n:
                for i in range(n):
                    touched += self._outcome(ref + i, error)
        return touched

    # ------------------------------------------------------------------ requests

    def roundtrip(
        self, ref: int, frame: bytes, timeout: float, pending: Pending | None = None
    ) -> Operation[Any]:
        """Send ``frame`` and return the outcome of ``ref`` (raised if it is an error)."""
        if pending is None:
            pending = Pending()
        until = self.clock() + timeout
        self.awaited[ref] = pending  # before sending: the answer may come while sending
        try:
            if not (yield Send(frame, until)):
                raise RequestError(E_TIMEOUT, self.not_reading)
            while ref not in pending.outcomes:
                if self.clock() >= until:
                    raise RequestError(E_TIMEOUT, f"no answer from {self.node} in time")
                yield Wait(pending, until)
            outcome = pending.outcomes.pop(ref)
        finally:
            self.awaited.pop(ref, None)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def request(self, op: str, args: dict[str, Any], timeout: float) -> Operation[Any]:
        """One request by name (any name: the node answers an unknown one ``unknown_op``)."""
        ref = self.ref()
        return (yield from self.roundtrip(ref, encode_api(API_REQUEST, ref, op, args), timeout))

    def call(self, op: Op, timeout: float) -> Operation[Any]:
        """One typed request (zdps.wire.api)."""
        ref = self.ref()
        return (yield from self.roundtrip(ref, encode_request(ref, op), timeout))

    def info(self, timeout: float) -> Operation[dict[str, Any]]:
        """The node's identity and endpoints (asked once)."""
        if self.info_reply is None:
            self.info_reply = yield from self.call(Info(), timeout)
        return self.info_reply

    def publish(
        self, topic: str, data: bytes | str, level: int, timeout: float
    ) -> Operation[PublishResult | None]:
        """One message; waits for its ack at ``level`` (0: only until it is queued)."""
        if not level:
            frame = encode_publish([publish_entry(0, topic, [to_bytes(data)], level)])
            if not (yield Send(frame, self.clock() + timeout)):
                raise RequestError(E_TIMEOUT, self.not_reading)
            self.unconfirmed += 1
            return None
        ref = self.ref()
        frame = encode_publish([publish_entry(ref, topic, [to_bytes(data)], level)])
        return (yield from self.roundtrip(ref, frame, timeout))

    def confirm(self, timeout: float) -> Operation[int]:
        """Wait until the node has read every fire-and-forget publish sent so far; how
        many it did not confirm within ``timeout`` (0: it read them all).

        Sent only means queued in this process: a node that is not reading, or none at
        all, leaves them there. The node reads a connection's frames in order, so its
        answer to a request sent after them says that it has read them all.
        """
        count = self.unconfirmed
        if not count or timeout <= 0:
            return count
        try:
            yield from self.call(Info(), timeout)
        except RequestError:
            return self.unconfirmed
        self.unconfirmed -= count
        return self.unconfirmed

    def serve(
        self, steps: Generator[Request | Report | Sleep, dict | None, T], timeout: float
    ) -> Operation[T]:
        """Carry out a recovery's steps: each Request as a request, None if it fails; each
        Report sent with nobody waiting for its answer (dropped when it comes)."""
        try:
            step = next(steps)
            while True:
                if type(step) is Report:
                    self.outbox.append(encode_request(self.ref(), step.op))
                    step = next(steps)
                elif type(step) is Request:
                    try:
                        reply = yield from self.call(step.op, timeout)
                    except RequestError as exc:
                        log.debug("%s for %s: %s", step.op.OP, step.op, exc)
                        reply = None
                    step = steps.send(reply)
                else:
                    yield step
                    step = next(steps)
        except StopIteration as done:
            return done.value
        finally:
            steps.close()

    # ------------------------------------------------------------------ subscribe, watch

    def subscribe(self, plan: SubscribePlan, recover: bool, timeout: float) -> Operation[Inbox]:
        """Make ``plan`` live on the driver's SUB (§9.4); its inbox, replayed from ``since``.

        The SUB connects before it subscribes, so that it sends its subscriptions in
        call order, groups before the token; ``ready`` returns once the node saw the
        token, hence the groups, and their owners confirmed them.
        """
        info = yield from self.info(timeout)
        pub = info["endpoints"]["batch_pub" if plan.batches else "pub"]
        inbox = Inbox(plan.groups, recover=recover or plan.since is not None)
        yield Dial(reachable_pub(pub, self.node))
        yield Filter(add=(*inbox.subscriptions(), plan.token_subscription))
        yield from self.call(Ready(plan.token, plan.groups), timeout)
        yield Filter(drop=(plan.token_subscription,))
        for topic in plan.replay:
            pager = Pager.make(topic, since=plan.since)
            inbox.replay(topic, (yield from self.serve(fetching(pager), timeout)), plan.since)
        return inbox

    def watch(self, topic: str, timeout: float) -> Operation[None]:
        """Emit the members of ``topic``, then again after every change, until closed.

        Closing it queues ``unwatch`` in the outbox: a generator being closed cannot
        take steps, and nothing waits for that reply.
        """
        ref = self.ref()
        pending = Pending()
        self.watches[ref] = pending
        try:
            members = yield from self.roundtrip(
                ref, encode_request(ref, Watch(topic)), timeout, pending
            )
            yield Emit([members])
            events = pending.events
            while True:
                if events:
                    batch = list(events)
                    events.clear()
                    yield Emit(batch)
                else:
                    yield Wait(pending, None)
        finally:
            if self.watches.pop(ref, None) is not None:
                self.outbox.append(encode_request(self.ref(), Unwatch(ref)))

    def take_outbox(self) -> list[bytes]:
        """The frames to send now if there is room, else to drop."""
        frames, self.outbox = self.outbox, []
        return frames

    def close(self) -> list[bytes]:
        """End every live watch: the frames to send now if there is room (see ``watch``)."""
        for ref in self.watches:
            self.outbox.append(encode_request(self.ref(), Unwatch(ref)))
        self.watches.clear()
        return self.take_outbox()
