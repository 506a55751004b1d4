"""What the signals ask of the daemon, as flags its event loop reads each turn.

SIGHUP: read the CURVE allow-lists and the permissions again. A first SIGTERM or
SIGINT: drain, then leave (docs/PROTOCOL.md §4.5); a second one: leave at once. The
handlers only set flags; the wakeup fd makes the loop's poll return at once.
"""

from __future__ import annotations

import signal
from typing import Any

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Signals:
    def __init__(self) -> None:
        self.reload = False
        self.drain = False
        self.stop = False
        self._previous: dict[int, Any] = {}
        self._old_fd = -1

    def install(self, wakeup_fd: int) -> None:
        self._previous = {s: signal.signal(s, self._on_signal) for s in HANDLED}
        self._old_fd = signal.set_wakeup_fd(wakeup_fd)

    def restore(self) -> None:
        signal.set_wakeup_fd(self._old_fd)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if signum == signal.SIGHUP:
            self.reload = True
        elif self.drain:
            self.stop = True
        else:
            self.drain = True
