"""Seeds: endpoints a node says hello to until some node answers there (§4.1).

Three kinds share the retry rules: the configured seeds (retried forever), peers
declared dead (redialed for ``lost_retry_ttl``, so a healed netsplit merges), and the
old endpoint of a peer that came back elsewhere (checked for a while: if its old
incarnation still answers there, two processes use one node id). Each retry uses a
fresh connection, with a backoff doubling from ``retry_min`` to ``retry_max``; the
others than configured seeds are spread to keep them within ``REDIALS_PER_SECOND`` in
all, from their first hello on: half of 1,000 nodes cut off is 500 endpoints, 250
hellos a second at 2 s each, 2,000 in the first 4 s of their backoffs.

A configured seed that has not answered is reported: a warning after ``WARN_AFTER``
seconds of silence and every ``WARN_EVERY`` seconds while it lasts, saying what the
IO layer learnt of the connection (``connection``), since "nothing listens there" and
"a socket that is not a cluster endpoint" need different fixes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from zdps.core.log_events import LogEvent, log_event

WARN_AFTER = 5.0  # seconds a configured seed may stay silent before the first warning
WARN_EVERY = 30.0  # seconds between two warnings about the same seed
REDIALS_PER_SECOND = 10.0  # hellos a second to endpoints other than seeds, on average at most
CONNECTION = {  # what the IO layer saw of the connection, and what it means for a seed
    None: "no connection made yet (a host that drops packets, or a slow network?)",
    "refused": "connection refused: nothing listens there",
    "rejected": "the ZeroMQ handshake failed: not a cluster endpoint (a pub endpoint?), "
    "or one whose CURVE settings do not match this node's",
    "denied": "the node there refused this node at its handshake: its curve_peers does not "
    "list this node's key",
    "zeromq": "a ZeroMQ socket accepts hellos but never answers: not a cluster endpoint "
    "(an API endpoint?), or a node of another scope",
}


@dataclass(slots=True)
class _Seed:
    next_try: float = 0.0
    backoff: float = 0.0
    answered_by: str | None = None
    expires: float = math.inf  # configured seeds never expire
    waiting_since: float | None = None  # the first hello since it last answered
    hellos: int = 0  # sent since it last answered
    connection: str | None = None  # a key of CONNECTION
    next_warning: float = 0.0


class Seeds:
    """The endpoints to say hello to, their retry timers and what is known of each."""

    def __init__(self, configured: list[str], retry_min: float, retry_max: float) -> None:
        self.configured = list(dict.fromkeys(configured))
        self.retry_min = retry_min
        self.retry_max = retry_max
        self._seeds = {endpoint: _Seed() for endpoint in self.configured}
        # Before this time ``due`` has nothing to do: it is the first retry or expiry of
        # all. Half of 1,000 nodes cut off is 500 endpoints here, and a look at each on
        # every wake-up of the node was most of its work in a split.
        self._next_due = 0.0 if self.configured else math.inf

    def __contains__(self, endpoint: str) -> bool:
        return endpoint in self._seeds

    def redial(self, endpoint: str, now: float, ttl: float) -> None:
        """Say hello to ``endpoint`` again soon and for ``ttl`` seconds (if not a seed);
        after the others being redialed, when many are (half a cluster cut off at once)."""
        queued = self._redial_gap()
        seed = self._seeds.setdefault(endpoint, _Seed(expires=now + ttl))
        seed.next_try, seed.backoff = now + self.retry_min + queued, 0.0
        seed.answered_by = None  # whoever answered before is gone from there
        self._next_due = min(self._next_due, seed.next_try)

    def _redial_gap(self) -> float:
        """Seconds between two hellos to one of the endpoints other than configured
        seeds, for them to get REDIALS_PER_SECOND hellos in all."""
        return (len(self._seeds) - len(self.configured)) / REDIALS_PER_SECOND

    def answered(self, endpoint: str, node: str) -> None:
        """``node`` answered a hello sent to ``endpoint``."""
        seed = self._seeds.get(endpoint)
        if seed is not None:
            seed.answered_by, seed.waiting_since, seed.hellos = node, None, 0

    def connection(self, endpoint: str, answer: str) -> None:
        """The IO layer's news of the connection to ``endpoint`` (a key of CONNECTION)."""
        assert answer in CONNECTION, answer
        seed = self._seeds.get(endpoint)
        if seed is not None:
            seed.connection = answer

    def due(self, now: float, skip: Callable[[str, str | None], bool]) -> Iterator[tuple[str, str]]:
        """(endpoint, step) for what to do now: ``hello`` (first try), ``retry`` (drop
        the connection, then hello) or ``drop`` (expired unanswered: drop the
        connection). ``skip(endpoint, answered_by)``: a node is known there already; it is
        looked at again ``retry_min`` later (it may be gone by then).
        """
        if now < self._next_due:
            return
        gap = self._redial_gap()
        next_due = math.inf
        for endpoint, seed in list(self._seeds.items()):
            known = skip(endpoint, seed.answered_by)
            if seed.expires < now:
                del self._seeds[endpoint]
                if not known:
                    yield endpoint, "drop"
                continue
            if known:
                seed.waiting_since = None
                seed.next_try = max(seed.next_try, now + self.retry_min)
            elif now >= seed.next_try:
                least, most = self.retry_min, self.retry_max
                if seed.expires != math.inf:  # not a configured seed: spread with the others
                    least, most = max(least, gap), max(most, gap)
                seed.backoff = min(max(seed.backoff * 2, least), most)
                seed.next_try = now + seed.backoff
                if seed.waiting_since is None:
                    seed.waiting_since, seed.hellos = now, 0
                seed.hellos += 1
                # A fresh connection per retry: hellos queued for an absent seed would
                # otherwise all arrive at once when it comes up.
                yield endpoint, "hello" if seed.hellos == 1 else "retry"
            next_due = min(next_due, seed.next_try, seed.expires)
        self._next_due = next_due

    def warnings(self, now: float, skip: Callable[[str, str | None], bool]) -> list[LogEvent]:
        """A warning per configured seed silent too long, at most every WARN_EVERY s;
        ``skip`` as for ``due`` (which may not have looked at a seed since it answered)."""
        events = []
        for endpoint in self.configured:
            seed = self._seeds.get(endpoint)
            if seed is None or seed.waiting_since is None:
                continue
            if skip(endpoint, seed.answered_by):
                seed.waiting_since = None
                continue
            waited = now - seed.waiting_since
            if waited < WARN_AFTER or now < seed.next_warning:
                continue
            seed.next_warning = now + WARN_EVERY
            why = CONNECTION[seed.connection]
            event = log_event("seed_silent", "warning", seed=endpoint, waited_s=waited, why=why)
            events.append(event)
        return events

    def view(
        self, now: float, own: str, node_at: Callable[[str, str | None], str | None]
    ) -> list[dict]:
        """The configured seeds for ``status``; ``node_at`` names the node known there
        (``own``, this node's id, at one of its own endpoints)."""
        rows: list[dict[str, Any]] = []
        for endpoint in self.configured:
            seed = self._seeds[endpoint]
            node = node_at(endpoint, seed.answered_by)
            waiting = seed.waiting_since is not None and node is None
            state = "self" if node == own else "answered" if node else "idle"
            rows.append(
                {
                    "endpoint": endpoint,
                    "state": "waiting" if waiting else state,
                    "node": node,
                    "waiting_s": round(now - seed.waiting_since, 3) if waiting else None,
                    "hellos": seed.hellos if waiting else 0,
                    "connection": seed.connection,
                }
            )
        return rows
