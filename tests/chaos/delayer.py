"""Delay every packet of an NFQUEUE by a fixed time: netem's ``delay`` where netem is missing.

Run inside a test host's namespace as ``delayer.py QUEUE SECONDS``; iptables sends the
packets to delay to NFQUEUE number QUEUE (with ``--queue-bypass``, so that packets pass
untouched when no delayer is bound). Each packet is held SECONDS and then accepted, in
arrival order; nothing is dropped. Prints ``ready`` once bound. On SIGTERM it releases
every packet it still holds and exits. ``--check`` only tells whether it can run here
(exit 0) or why not (the last line of its output).
"""

from __future__ import annotations

import heapq
import itertools
import select
import signal
import sys
import time
from typing import Any


def _bind(queue: int, callback: Any) -> Any:
    try:
        from netfilterqueue import NetfilterQueue
    except ImportError:
        sys.exit("the NetfilterQueue package is not installed (needs libnetfilter-queue)")
    nfq = NetfilterQueue()
    try:
        nfq.bind(queue, callback, max_len=65536)
    except OSError as exc:
        sys.exit(f"cannot bind NFQUEUE {queue} (no nfnetlink_queue in this kernel?): {exc}")
    return nfq


def _stop(_signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def main(queue: int, seconds: float) -> None:
    held: list[tuple[float, int, Any]] = []  # (release at, arrival order, packet)
    order = itertools.count()

    def hold(packet: Any) -> None:
        heapq.heappush(held, (time.monotonic() + seconds, next(order), packet))

    nfq = _bind(queue, hold)
    signal.signal(signal.SIGTERM, _stop)
    fd = nfq.get_fd()
    print("ready", flush=True)
    try:
        while True:
            wait = held[0][0] - time.monotonic() if held else 1.0
            if select.select([fd], [], [], max(0.0, wait))[0]:
                nfq.run(block=False)
            now = time.monotonic()
            while held and held[0][0] <= now:
                heapq.heappop(held)[2].accept()
    finally:
        for _, _, packet in sorted(held, key=lambda item: item[:2]):
            packet.accept()
        nfq.unbind()


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        _bind(0, lambda packet: packet.accept()).unbind()
        print("ok")
    else:
        main(int(sys.argv[1]), float(sys.argv[2]))
