"""Local delivery: batches from the core out of the two PUB sockets (§9.1, §9.5).

The batch PUB gets each batch whole, three frames whatever its size. The raw PUB gets
each message as three frames, which is the one place where the data path works per
message: a batch is unpacked (C speed) and each message leaves as topic, header and
payload. So it is done only when a raw SUB subscribed to the topic
(``subscribers.py``), by the compiled loop where there is one (``expansion.py``).
Messages that find a subscriber's queue full are counted per topic, logged, and owed a
loss notice (``notices.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import zmq

from zdps.core.log_events import LogEvent, log_event
from zdps.core.node import NodeCore
from zdps.daemon.expansion import expander, send_message
from zdps.daemon.notices import LossNotices
from zdps.wire.delivery import batch_header, closed_header
from zdps.wire.errors import E_MALFORMED, ProtocolError

expand, EXPANSION = expander()  # the loop, and which one (shown by ``zdps status``)
SLOW_SUBSCRIBER_LOG = 5.0  # seconds between two log lines of subscriber_queue_full


class LocalOutput:
    """What the two PUBs send: the core's deliveries, the losses they meet (counted per
    topic, and logged), and the notices owed for them."""

    def __init__(
        self,
        pub: zmq.Socket,
        batch_pub: zmq.Socket,
        raw_wants: Callable[[str], bool],
        core: NodeCore,
        log: Callable[[LogEvent, float], None],
        pub_hwm: int,
    ) -> None:
        self.pub, self.batch_pub, self.raw_wants = pub, batch_pub, raw_wants
        self.core, self.log, self.pub_hwm = core, log, pub_hwm
        self.notices = (LossNotices(pub), LossNotices(batch_pub))

    def deliver(self, deliveries: list, now: float) -> None:
        core = self.core
        lost = deliver(self.pub, self.batch_pub, deliveries, self.raw_wants, core.bad_input)
        if lost:
            worst = max(lost, key=lost.__getitem__)
            event = log_event(
                "subscriber_queue_full", "warning", SLOW_SUBSCRIBER_LOG,
                times=core.subscribers_lost(lost), pub_hwm=self.pub_hwm, topic=worst,
            )  # fmt: skip
            self.log(event, now)
        for notices in self.notices:
            notices.after(deliveries, lost, now)

    def owed(self, now: float) -> None:
        """Send the notices owed since an earlier turn."""
        for notices in self.notices:
            if notices.pending:
                notices.send(now)


def deliver(
    pub: zmq.Socket,
    batches: zmq.Socket,
    deliveries: list,
    raw_wants: Callable[[str], bool],
    bad_input: Callable[[str, str], None],
) -> dict[str, int]:
    """Send ``deliveries`` (``Outbox.deliveries``) in order: every batch whole on
    ``batches``, and message by message on ``pub`` when ``raw_wants`` its topic. Returns
    how many messages of each topic found a subscriber's queue full (lost for that
    subscriber), topics without loss left out.

    A batch that does not unpack (a peer's bug: the entry node checked it) is counted
    as bad input and not sent on ``pub``.
    """
    lost: dict[str, int] = {}
    for topic, seq, epoch, n, batch in deliveries:
        topic_frame = topic.encode() + b"\x00"
        if batch is None:  # the final message of a deleted topic
            header = closed_header(seq, epoch)
            full = send_message(pub, topic_frame, header, b"")
            full += send_message(batches, topic_frame, header, b"")
        else:
            full = n * send_message(batches, topic_frame, batch_header(seq, epoch, n), batch)
            if raw_wants(topic):
                try:
                    full += expand(pub, topic_frame, seq, epoch, n, batch)
                except ProtocolError as exc:
                    bad_input(E_MALFORMED, f"a batch of {topic!r} to deliver: {exc.message}")
        if full:
            lost[topic] = lost.get(topic, 0) + full
    return lost
