"""Prometheus metrics (``metrics = HOST:PORT``, docs/METRICS.md).

Nothing is counted per message for them: a labelled ``inc()`` costs about 1.5 µs,
more than zdps spends on a message at full speed. A custom collector turns the node's
own ``status`` into metric families at scrape time. The status is taken by the event
loop every SNAPSHOT_EVERY and handed over whole, so the HTTP thread never reads the
loop's state while it changes; a scrape sees it at most that old. The loop also times
its own turns (only with metrics on): their duration is a histogram, and the lag is
how late the loop ran its timers, the most since the last snapshot.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

TURN_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0)  # seconds
SNAPSHOT_EVERY = 0.2  # seconds between two status snapshots for the scrapes


class LoopTimes:
    """The loop's turn durations (a histogram) and its lag at the last tick."""

    def __init__(self) -> None:
        self.counts = [0] * (len(TURN_BUCKETS) + 1)
        self.total = 0.0
        self.lag = 0.0  # the most late a timer ran since the last snapshot
        self.worst = 0.0  # ... since this snapshot

    def turn(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(TURN_BUCKETS, seconds)] += 1
        self.total += seconds


class NodeMetrics:
    """The HTTP endpoint, and the latest status snapshot it reports."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.status: dict[str, Any] | None = None  # the snapshot the scrapes report
        self.loop = LoopTimes()
        self._next = 0.0
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # RSS, CPU, open files: process_*
        self.registry.register(self)
        self.server, self._thread = start_http_server(
            int(port), host.strip("[]"), registry=self.registry
        )

    def after_turn(
        self, now: float, deadline: float, done: float, status: Callable[[float], dict]
    ) -> None:
        """A turn of the loop, woken at ``now`` for timers due at ``deadline``, ended at
        ``done``; ``status`` is taken every SNAPSHOT_EVERY."""
        loop = self.loop
        loop.turn(done - now)
        if now >= deadline:
            loop.worst = max(loop.worst, now - deadline)
        if now >= self._next:
            self._next = now + SNAPSHOT_EVERY
            self.status, loop.lag, loop.worst = status(now), loop.worst, 0.0

    def describe(self) -> list[Metric]:
        return []  # collected at scrape time only

    def collect(self) -> Iterator[Metric]:
        status = self.status
        if status is None:
            return
        yield from _families(status)
        yield from _loop_families(self.loop)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _families(status: dict[str, Any]) -> Iterator[Metric]:
    info = GaugeMetricFamily(
        "zdps_node_info", "The node: id, scope, zdps version.", labels=["node", "scope", "version"]
    )
    info.add_metric([status["node"], status["scope"], status["version"]], 1)
    yield info
    for name, key, text in _GAUGES:
        yield GaugeMetricFamily(name, text, float(status[key]))
    states = {"alive": 0, "joining": 0}
    for peer in status["peers"]:
        states[peer["state"]] = states.get(peer["state"], 0) + 1
    yield _labelled("zdps_peers", "Peers by state.", "state", states)
    yield _labelled("zdps_groups", "Groups (topics and prefixes).", "where", status["groups"])
    yield _labelled("zdps_history", "History held here.", "what", status["history"])
    held = status["held"]  # zdps_held_total is the counter of frames ever held
    yield _labelled("zdps_holding", "Client frames held now (saturated).", "unit", held)
    for name, value in status["counters"].items():
        yield CounterMetricFamily(f"zdps_{name}", f"Counter {name} (README, Counters).", value)
    errors = CounterMetricFamily("zdps_errors", "Bad input refused, by code.", labels=["code"])
    for code, value in status["errors"].items():
        errors.add_metric([code], value)
    yield errors
    fanout = CounterMetricFamily("zdps_peer_fanout_sent", "Copies sent per peer.", labels=["peer"])
    for peer in status["peers"]:
        fanout.add_metric([peer["node"]], peer["fanout_sent"])
    yield fanout
    losses = status["subscriber_losses"]
    episodes = CounterMetricFamily(
        "zdps_subscriber_loss_episodes", "Times local SUBs began losing messages.", labels=["topic"]
    )
    for topic, value in losses["by_topic"].items():
        episodes.add_metric([topic], value)
    if losses["other_topics"]:
        episodes.add_metric([""], losses["other_topics"])
    yield episodes
    reported = CounterMetricFamily(
        "zdps_subscriber_missed_messages",
        "Messages zdps subscribers reported missing live, and how many they recovered.",
        labels=["subscriber", "recovered"],
    )
    for name, counts in losses["by_subscriber"].items():
        reported.add_metric([name, "no"], counts["missed"] - counts["recovered"])
        reported.add_metric([name, "yes"], counts["recovered"])
    yield reported


_GAUGES = (  # (metric, status key, help) of the plain gauges
    ("zdps_uptime_seconds", "uptime_s", "Since the node started."),
    ("zdps_topics_sequenced", "topics_sequenced", "Topics this node owns and sequences."),
    ("zdps_pending_acks", "pending_acks", "Publishes awaiting an ack."),
    ("zdps_saturated", "paused", "1 while flow control holds publishes."),
)


def _labelled(name: str, text: str, label: str, values: dict[str, Any]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, text, labels=[label])
    for key, value in values.items():
        family.add_metric([key], value)
    return family


def _loop_families(loop: LoopTimes) -> Iterator[Metric]:
    buckets, running = [], 0
    for bound, count in zip((*TURN_BUCKETS, float("inf")), loop.counts, strict=True):
        running += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
    yield HistogramMetricFamily(
        "zdps_loop_turn_seconds", "How long a turn of the event loop took.",
        buckets=buckets, sum_value=loop.total,
    )  # fmt: skip
    yield GaugeMetricFamily(
        "zdps_loop_lag_seconds", "How late the event loop ran a timer (the most, lately).", loop.lag
    )
