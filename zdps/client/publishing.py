"""Windowed publishing as steps: ``publish_many`` and ``publish_stream`` of both clients.

A window bounds the messages sent and not yet acknowledged, so a fast publisher is
slowed down by its node (flow control, docs/PROTOCOL.md §7.7) instead of queueing
without bound. A stream stops early once the node is unreachable: a frame that
cannot be sent within the timeout, or a publish that times out while the node has
sent nothing at all since it was sent. ``publish_stream`` is the fastest path: its
only work per message is to add it to the frame; acks settle whole frames. An item
whose data is a list of payloads is that many messages to its topic, added to the
frame as a run at C speed: no work per message at all. A frame
(``frames.py``: one batch per run of a topic) leaves when it holds ``batch`` messages
or 4 MiB, or at a ``FLUSH`` among the messages: the source has nothing more for now,
so ``publish_many`` also waits for the outcomes of what is in flight, and reports them
before it reads the source again.

A frame's batches are ``lazy`` (docs/PROTOCOL.md §7.4: the nodes may pace their acks)
unless the publisher waits on it right after sending: the frame that fills the window,
the one sent at a FLUSH by ``publish_many``, and the last. Its acks then come at once,
with those of the client's earlier batches on the same path. To know which frame is
the last, or comes before a FLUSH, a full frame leaves when the next item is read if
that cannot block: the messages are a list or tuple, or (``publish_many``) the source
has yielded a FLUSH, which a source yields before it blocks. Of an iterator that never
yields FLUSH, the last full frame stays lazy: its acks may come a pace late.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from zdps.client.frames import PublishFrame
from zdps.client.ledger import StreamLedger, StreamResult
from zdps.client.protocol import FLUSH, PublishError, PublishResult, ack_level, to_bytes
from zdps.client.session import Session
from zdps.client.steps import DRAIN, Emit, Operation, Pending, Send, Wait
from zdps.wire import E_TIMEOUT

Messages = Iterable[tuple[str, bytes | str]]
_END: Any = object()  # the end of the messages


def holds_full(messages: Messages) -> bool:
    """Whether a full frame may wait for the next item: reading on in a list cannot
    block (a source that yields FLUSH says so before it blocks)."""
    return isinstance(messages, (list, tuple))


def not_sent(item: tuple[str, Any], session: Session) -> list[PublishError]:
    """A timeout for each message of ``item``, read but not sent (the node is unreachable)."""
    data, why = item[1], f"not sent: {session.not_reading}"
    return [PublishError(E_TIMEOUT, why) for _ in range(len(data) if type(data) is list else 1)]


def _check(window: int, batch: int) -> None:
    if window < 1 or batch < 1:
        raise ValueError("window and batch must be at least 1")


def publish_many(
    session: Session, messages: Messages, ack: bool | str, window: int, batch: int, timeout: float
) -> Operation[None]:
    """Emit the outcome of each publish as it settles (see ``Client.publish_many``).

    Without acks nothing is emitted unless a frame cannot be sent. A message is read
    from ``messages`` only once there is room for it in the window, so none is read
    and then dropped.
    """
    _check(window, batch)
    level = ack_level(ack)
    clock = session.clock
    pending = Pending()
    inflight: OrderedDict[int, float] = OrderedDict()  # ref -> sent at, oldest first
    frame = PublishFrame()
    unreachable = False

    def flush(lazy: bool = True) -> Operation[None]:
        """Send ``frame``; emits the errors of the messages that could not be sent.
        Not ``lazy`` when the publisher waits on it next (module docstring)."""
        nonlocal unreachable
        count = frame.count
        lazy = lazy and len(inflight) + count < window
        first = session.reserve(count) if level else 0
        refs = range(first, first + count) if level else range(0)
        for ref in refs:  # acks read while waiting for room are kept
            session.awaited[ref] = pending
        data = frame.take(first, level, lazy)
        now = clock()
        if not (yield Send(data, now + timeout)):
            for ref in refs:
                session.forget(ref, pending)
            unreachable = True
            why = f"not sent: {session.not_reading}"
            yield Emit([PublishError(E_TIMEOUT, why) for _ in range(count)])
            return
        for ref in refs:
            inflight[ref] = now
        if not level:
            session.unconfirmed += count

    def settled(block: bool) -> Operation[None]:
        """Emits the outcomes that arrived (waiting for one if ``block``), then expiries."""
        nonlocal unreachable
        yield Wait(pending, next(iter(inflight.values())) + timeout) if block else DRAIN
        out: list[PublishResult | PublishError] = []
        for ref, outcome in pending.outcomes.items():
            del inflight[ref]
            out.append(outcome)
        pending.outcomes.clear()
        now = clock()
        while inflight:
            ref, sent_at = next(iter(inflight.items()))
            if sent_at + timeout > now:
                break
            del inflight[ref]
            session.forget(ref, pending)
            if session.last_rx < sent_at:
                unreachable = True
            why = f"no acknowledgement for publish #{ref} within {timeout:g} s"
            out.append(PublishError(E_TIMEOUT, why))
        if out:
            yield Emit(out)

    def sent_full() -> Operation[None]:
        yield from flush()
        if inflight:
            yield from settled(block=False)

    source = iter(messages)
    # Only while ``hold`` does a full frame wait for the next item (else it left at once):
    # the check per item costs nothing more unless it does. Becomes true at a FLUSH.
    hold = bool(level) and holds_full(messages)
    try:
        while not unreachable:
            # Room in the window first, so that no message is read and then dropped.
            while level and len(inflight) + frame.count >= window and not unreachable:
                yield from flush() if frame.count else settled(block=True)
            if unreachable:
                break
            try:
                item = next(source, _END)
            except Exception:
                if frame.count:  # what was read before the failure leaves
                    yield from flush()
                raise
            if item is _END:
                break
            if item is FLUSH:  # nothing more for now: send, and report what is settled
                hold = bool(level)
                if frame.count:
                    yield from flush(lazy=False)
                while inflight and not unreachable:
                    yield from settled(block=True)
                continue
            if hold and frame.full(batch):  # held back for this item, which is no FLUSH
                yield from sent_full()
                if unreachable:
                    yield Emit(not_sent(item, session))
                    break
            topic, data = item
            if type(data) is list:  # a run of messages to one topic
                while data and not unreachable:
                    while level and len(inflight) + frame.count >= window and not unreachable:
                        yield from flush() if frame.count else settled(block=True)
                    room = batch - frame.count
                    if level:
                        room = min(room, window - len(inflight) - frame.count)
                    data = data[frame.add_many(topic, data, room) :]
                    if frame.full(batch) and (data or not hold):
                        yield from sent_full()
                if data:  # the node became unreachable: the rest of the run is not sent
                    yield Emit(not_sent((topic, data), session))
                continue
            frame.add(topic, data if type(data) is bytes else to_bytes(data))
            if frame.full(batch) and not hold:
                yield from sent_full()
        if frame.count:
            yield from flush(lazy=False)
        while inflight:
            yield from settled(block=True)
        if not level and not unreachable:
            # Sent is only queued here: report those the node does not confirm reading.
            left = yield from session.confirm(timeout)
            if left:
                session.unconfirmed -= left
                why = f"not confirmed: the node did not read it within {timeout:g} s"
                yield Emit([PublishError(E_TIMEOUT, why) for _ in range(left)])
    finally:
        # Closed early (or interrupted): late outcomes of these refs are dropped.
        for ref in inflight:
            session.forget(ref, pending)


def publish_stream(
    session: Session, messages: Messages, window: int, batch: int, ack: str, timeout: float
) -> Operation[StreamResult]:
    """Publish with acks, counting them (see ``Client.publish_stream``)."""
    _check(window, batch)
    level = ack_level(ack)
    if not level:
        raise ValueError("publish_stream counts acknowledgements: ack cannot be none")
    clock = session.clock
    ledger = StreamLedger()
    pending = Pending()
    frame = PublishFrame()
    unreachable = False
    late = f"no acknowledgement within {timeout:g} s"

    def flush(lazy: bool = True) -> Operation[None]:
        nonlocal unreachable
        count = frame.count
        lazy = lazy and ledger.unsettled + count < window
        first = session.reserve(count)
        data = frame.take(first, level, lazy)
        until = clock() + timeout
        ledger.add(first, count, until)  # before sending: its acks may come while sending
        if not (yield Send(data, until)):
            ledger.settle(first, count, PublishError(E_TIMEOUT, f"not sent: {session.not_reading}"))
            unreachable = True

    def wait() -> Operation[None]:
        nonlocal unreachable
        deadline = ledger.oldest_deadline()
        if deadline is None:
            return
        yield Wait(pending, deadline)
        for expired in ledger.expire(clock(), late):
            if session.last_rx < expired - timeout:
                unreachable = True

    def sent_full() -> Operation[None]:
        yield from flush()
        yield DRAIN

    source = iter(messages)
    stream = (ledger, pending)
    session.streams.append(stream)
    add = frame.add
    hold = holds_full(messages)  # a full frame may wait to see whether it is the last
    try:
        while not unreachable:
            while ledger.unsettled + frame.count >= window and not unreachable:
                yield from flush() if frame.count else wait()
            if unreachable or (item := next(source, _END)) is _END:
                break  # (only a list's full frame is held back: reading a list cannot fail)
            if item is FLUSH:
                if frame.count:
                    yield from sent_full()
                continue
            if hold and frame.full(batch):  # held back for this item: not the last
                yield from sent_full()
                if unreachable:
                    ledger.failures += not_sent(item, session)
                    break
            topic, data = item
            if type(data) is list:  # a run of messages to one topic
                while data and not unreachable:
                    while ledger.unsettled + frame.count >= window and not unreachable:
                        yield from flush() if frame.count else wait()
                    room = min(batch, window - ledger.unsettled) - frame.count
                    data = data[frame.add_many(topic, data, room) :]
                    if frame.full(batch) and (data or not hold):
                        yield from sent_full()
                if data:  # the node became unreachable: the rest of the run is not sent
                    ledger.failures += not_sent((topic, data), session)
                continue
            add(topic, data if type(data) is bytes else to_bytes(data))
            if frame.full(batch) and not hold:
                yield from sent_full()
        if frame.count:
            yield from flush(lazy=False)
        while ledger.unsettled:
            yield from wait()
    finally:
        session.streams.remove(stream)
    return StreamResult(ledger.acked, ledger.failures)
