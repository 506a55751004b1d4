"""Losses of local subscribers (a SUB ``pub_hwm`` behind), counted per topic.

The raw and batch PUBs tell which topic a message that found a subscriber's queue full
was of, not which subscriber lost it, nor how many more it loses until it has caught
up (libzmq does not say): so what is counted is loss *episodes* per topic, for
``status``, with a bound on how many topics are named. The subscribers see the
messages themselves as gaps in ``seq`` (and are sent loss notices, ``notices.py``),
and the zdps clients report what they missed and recovered (the ``lost`` request):
that is shown per subscriber, by the name it gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_TOPICS = 1000  # topics named; the losses of any more are counted together
MAX_SUBSCRIBERS = 1000  # subscribers named; the reports of any more are summed
MAX_COUNT = 2**63 - 1  # a reported sum stops here


@dataclass(slots=True)
class SubscriberLosses:
    """Loss episodes per topic (at most MAX_TOPICS of them), and the rest in one sum."""

    by_topic: dict[str, int] = field(default_factory=dict)
    other_topics: int = 0
    # subscriber name -> [missed, recovered], as the subscribers reported them
    by_subscriber: dict[str, list[int]] = field(default_factory=dict)
    other_subscribers: list[int] = field(default_factory=lambda: [0, 0])

    def add(self, lost: dict[str, int]) -> int:
        """Count one flush's losses (topic -> messages); returns how many in all."""
        by_topic = self.by_topic
        for topic, n in lost.items():
            if topic in by_topic or len(by_topic) < MAX_TOPICS:
                by_topic[topic] = by_topic.get(topic, 0) + n
            else:
                self.other_topics += n
        return sum(lost.values())

    def reported(self, subscriber: str, missed: int, recovered: int) -> None:
        """A subscriber missed ``missed`` messages live and recovered ``recovered``."""
        named = self.by_subscriber
        if subscriber in named or len(named) < MAX_SUBSCRIBERS:
            counts = named.setdefault(subscriber, [0, 0])
        else:
            counts = self.other_subscribers
        # Saturating: a status reply must still pack (msgpack ints end at 2**64).
        counts[0] = min(counts[0] + missed, MAX_COUNT)
        counts[1] = min(counts[1] + recovered, counts[0])

    def view(self) -> dict[str, object]:
        """What ``status`` shows: the topics and the subscribers that lost most first."""
        ranked = sorted(self.by_topic.items(), key=lambda item: (-item[1], item[0]))
        subscribers = sorted(self.by_subscriber.items(), key=lambda item: (-item[1][0], item[0]))
        missed, recovered = self.other_subscribers
        return {
            "by_topic": dict(ranked),
            "other_topics": self.other_topics,
            "by_subscriber": {name: {"missed": m, "recovered": r} for name, (m, r) in subscribers},
            "other_subscribers": {"missed": missed, "recovered": recovered},
        }
