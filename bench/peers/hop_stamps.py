"""`zdps` with its loop wrapped to time each hop: what `bench/hops` runs as a node.

A stand-in for the `zdps` console script (`python hop_stamps.py start ...`). For every
frame a node reads that carries a `zdps bench` payload, it notes how long ago the
payload was stamped when the frame's handling began, and when the outbox it went into
was carried out; at exit it writes the medians and 90th percentiles as JSON to
``$ZDPS_HOPS_DIR/<node id>.json``. Only the first stamp of a frame counts: at a moderate
rate most frames carry one message. The nodes work as they always do.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import zdps.daemon.loop as loop
from zdps.bench_workers import STAMP
from zdps_cli.main import cli

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from peers.common import percentiles_us

BIN8_64 = b"\xc4\x40"  # msgpack's bin 8 header of a 64-byte payload
_run = loop.Daemon.run


def _stamp(frame: bytes) -> int | None:
    """The send time in the first 64-byte payload of ``frame``, if it looks like one."""
    at = frame.find(BIN8_64)
    if at < 0 or len(frame) < at + 2 + STAMP.size:
        return None
    sent = STAMP.unpack_from(frame, at + 2)[0]
    return sent if 0 < time.monotonic_ns() - sent < 10**9 else None


def run(self: loop.Daemon) -> int:
    """The daemon's own loop, its frame handlers and outbox wrapped."""
    handled: list[int] = []
    flushed: list[int] = []
    waiting: list[int] = []

    def timed(handle):
        def wrapper(identity: bytes, frame: Any, now: float) -> bool:
            sent = _stamp(frame.bytes)
            if sent is not None:
                handled.append(time.monotonic_ns() - sent)
                waiting.append(sent)
            return handle(identity, frame, now)

        return wrapper

    flush = self._flush

    def carried_out() -> None:
        flush()
        if waiting:
            done = time.monotonic_ns()
            flushed.extend(done - sent for sent in waiting)
            waiting.clear()

    self._cluster_message = timed(self._cluster_message)  # type: ignore[method-assign]
    self._client_message = timed(self._client_message)  # type: ignore[method-assign]
    self._flush = carried_out  # type: ignore[method-assign]
    try:
        return _run(self)
    finally:
        path = os.path.join(os.environ["ZDPS_HOPS_DIR"], f"{self.config.node_id}.json")
        with open(path, "w") as out:
            json.dump({"handled": percentiles_us(handled), "sent_on": percentiles_us(flushed)}, out)


if __name__ == "__main__":
    loop.Daemon.run = run  # type: ignore[method-assign]
    sys.exit(cli())
