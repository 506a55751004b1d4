"""Entry point of one child process: `python -m peers.worker MODULE ROLE CONFIG_JSON`.

Runs `peers.MODULE.ROLE(config)`. The role writes `READY {...}` on stdout once it is
set up and `RESULT {...}` when it is done; `peers.runner` reads both.
"""

from __future__ import annotations

import importlib
import json
import signal
import sys


def main() -> None:
    module, role, config = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    # The parent ends a run with SIGTERM: leave at once, without a traceback.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    getattr(importlib.import_module(f"peers.{module}"), role)(config)


if __name__ == "__main__":
    main()
