"""What the scale simulator measures: bytes by message kind, who knows what when, sizes.

``Meter`` is ``SimNet.on_frames``: it counts the encoded envelope bytes each node sends,
split by the kinds of the messages in them (an envelope of one kind is all that kind's;
a mixed one is split by each message's own encoding, the header going to the first).
``Knowledge`` is ``SimNet.on_log``: from each node's ``peer_up``/``peer_down``/``suspect``
events it keeps, per observer, how many peers it holds alive and, for the nodes a
scenario watches, when each observer learnt they came up or died; and it counts the
deaths and suspicions of nodes that were running (false ones).
"""

from __future__ import annotations

import gc
import math
import sys
import types
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from zdps.core.log_events import LogEvent
from zdps.wire.codec import NodeMessage, pack

# Message kinds grouped as the scale table reports them (anything else is "data").
CATEGORIES = {
    **dict.fromkeys(("probe", "probe_ack", "probe_nack", "probe_req"), "probes"),
    **dict.fromkeys(("suspect", "alive", "dead"), "verdicts"),
    "ping": "pings",  # heartbeats carrying the view and scope digests
    "peers": "peers",  # a full peer list, the answer to a ping whose view differs
    **dict.fromkeys(("hello", "bye"), "hellos"),
    **dict.fromkeys(("sync", "update", "resync"), "syncs"),
}
KINDS = ("probes", "verdicts", "pings", "peers", "hellos", "syncs", "data")


@dataclass
class Meter:
    """Envelope bytes and frames sent, by category and by sender, since ``reset``."""

    bytes: Counter[str] = field(default_factory=Counter)
    messages: Counter[str] = field(default_factory=Counter)
    by_node: Counter[str] = field(default_factory=Counter)
    frames: int = 0

    def __call__(self, src: str, _endpoint: str, messages: list[NodeMessage], frames: list) -> None:
        size = sum(map(len, frames))
        self.frames += len(frames)
        self.by_node[src] += size
        kinds = [CATEGORIES.get(m.KIND, "data") for m in messages]
        self.messages.update(kinds)
        if len(set(kinds)) == 1:
            self.bytes[kinds[0]] += size
            return
        sizes = [len(pack(m.encode())) for m in messages]
        self.bytes[kinds[0]] += size - sum(sizes)
        for kind, part in zip(kinds, sizes, strict=True):
            self.bytes[kind] += part

    def reset(self) -> None:
        self.bytes.clear()
        self.messages.clear()
        self.by_node.clear()
        self.frames = 0

    def rates(self, seconds: float, nodes: int) -> dict[str, Any]:
        """Per node and second: bytes by category, total bytes, frames; the busiest node."""
        per = seconds * nodes
        rates: dict[str, Any] = {kind: self.bytes[kind] / per for kind in KINDS}
        rates["total"] = sum(self.bytes.values()) / per
        rates["frames"] = self.frames / per
        rates["max_node"] = max(self.by_node.values(), default=0) / seconds
        rates["messages"] = {kind: self.messages[kind] / per for kind in KINDS}
        return rates


@dataclass
class Knowledge:
    """Peers each node holds alive, when watched nodes were known up or dead, false deaths."""

    running: Callable[[str], bool]  # whether a node is running now (its core exists)
    apart: Callable[[str, str], bool] = lambda a, b: False  # split: a death between is due
    full: int = 0  # peers a node holds when it knows the whole cluster
    alive: Counter[str] = field(default_factory=Counter)
    full_at: dict[str, float] = field(default_factory=dict)  # observer: when it held ``full``
    up: dict[str, dict[str, float]] = field(default_factory=dict)  # watched: observer: when
    down: dict[str, dict[str, float]] = field(default_factory=dict)
    why: Counter[str] = field(default_factory=Counter)  # how watched deaths were decided
    false_deaths: list[tuple[float, str, str, str]] = field(default_factory=list)
    suspicions: int = 0
    false_suspicions: int = 0

    def __call__(self, node: str, now: float, event: LogEvent) -> None:
        name = event.event
        if name not in ("peer_up", "peer_down", "suspect"):
            return
        fields = dict(event.fields)
        subject = fields["node"]
        if name == "suspect":
            self.suspicions += 1
            self.false_suspicions += self.running(subject) and not self.apart(node, subject)
        elif name == "peer_up":
            self.alive[node] += 1
            if subject in self.up:
                self.up[subject].setdefault(node, now)
            if self.alive[node] == self.full:
                self.full_at.setdefault(node, now)
        else:
            self.alive[node] -= 1
            due = not self.running(subject) or self.apart(node, subject)
            if fields["reason"] == "dead" and not due:
                self.false_deaths.append((now, node, subject, fields["why"]))
            if subject in self.down:
                self.down[subject].setdefault(node, now)
                self.why[fields["why"].split(" by ")[0]] += 1

    def expect(self, full: int) -> None:
        """From now on a node knows the whole cluster when it holds ``full`` peers."""
        self.full, self.full_at = full, {}


def spread(times: Iterable[float], since: float = 0.0) -> dict[str, float]:
    """p50, p99 and max of ``times - since`` (nearest rank), and how many there are."""
    values = sorted(t - since for t in times)
    if not values:
        return {"n": 0, "p50": math.nan, "p99": math.nan, "max": math.nan}

    def rank(q: float) -> float:
        return values[max(0, math.ceil(q * len(values)) - 1)]

    return {"n": len(values), "p50": rank(0.5), "p99": rank(0.99), "max": values[-1]}


_SHARED = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.CodeType)


def deep_size(root: object) -> int:
    """Bytes of every object reachable from ``root``, counted once; classes, modules and
    functions are shared by all nodes of a process and not counted."""
    seen: set[int] = set()
    stack = [root]
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _SHARED):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total
