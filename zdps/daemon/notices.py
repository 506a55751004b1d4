"""Loss notices (docs/PROTOCOL.md §9.6): subscribers that lost messages at a PUB are
told so, even when no later message of the topic comes to show the gap.

A SUB that falls ``pub_hwm`` behind loses messages at the node (``expansion.py``) and
sees the gap in ``seq`` only when a later message of the topic reaches it; after the
end of a burst nothing would ever say so. libzmq sets such a SUB aside until it has
caught up, and does not say when that is. So after a loss of a topic the node sends,
every NOTICE_INTERVAL for NOTICE_FOR after the topic's last loss, a notice of the last
position it delivered of that topic, to the SUBs that subscribed ``LOST_PREFIX`` + a
group matching it (the zdps clients do, for each of their groups; raw SUBs never see
one). The first notice sent after the SUB caught up reaches it behind what it had
queued; a client whose last message is older fetches the rest from history. A notice
costs one small message per topic and second, and only after a loss.
"""

from __future__ import annotations

import zmq

from zdps.topics import LOST_PREFIX
from zdps.wire.delivery import lost_header

NOTICE_INTERVAL = 1.0  # seconds between two notices of one topic
NOTICE_FOR = 120.0  # seconds after a topic's last loss during which it is noticed
MAX_TOPICS = 10_000  # topics noticed at once, at most (a memory bound)


class LossNotices:
    """The notices one PUB owes: topic -> [epoch, seq, last loss, next notice]."""

    def __init__(self, pub: zmq.Socket) -> None:
        self.pub = pub
        self.pending: dict[str, list] = {}
        self._due = float("inf")  # the earliest notice due

    def after(self, deliveries: list, lost: dict[str, int], now: float) -> None:
        """Deliveries (``Outbox.deliveries``) went out, and ``lost`` (topic -> count)
        found a queue full: note the topics to tell, and how far each went."""
        pending = self.pending
        for topic in lost:
            entry = pending.get(topic)
            if entry is not None:
                entry[2] = now
            elif len(pending) < MAX_TOPICS:
                pending[topic] = [0, 0, now, now]
                self._due = now
        if pending:
            for topic, seq, epoch, n, _batch in deliveries:
                entry = pending.get(topic)
                last = seq + max(n, 1) - 1
                if entry is not None and (epoch, last) > (entry[0], entry[1]):
                    entry[0], entry[1] = epoch, last

    def send(self, now: float) -> None:
        """Send the notices that are due: lossy, as a SUB still set aside gets the next."""
        if now < self._due:
            return
        pub, pending = self.pub, self.pending
        for topic, entry in list(pending.items()):
            epoch, seq, last_loss, due = entry
            if now < due:
                continue
            if now - last_loss > NOTICE_FOR:
                del pending[topic]
                continue
            entry[3] = now + NOTICE_INTERVAL
            frames = [LOST_PREFIX + topic.encode() + b"\x00", lost_header(seq, epoch), b""]
            pub.setsockopt(zmq.XPUB_NODROP, 0)
            pub.send_multipart(frames)
            pub.setsockopt(zmq.XPUB_NODROP, 1)
        self._due = min((entry[3] for entry in pending.values()), default=float("inf"))
