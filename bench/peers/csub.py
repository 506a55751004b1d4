"""The C SUB (`csub.c`): built at run time with gcc against the system's libzmq, and
started as a child that speaks the READY/RESULT lines of `peers.common`.

It measures a node's local PUB without a Python subscriber in the way: a raw ZeroMQ
SUB reading the documented three-frame messages (docs/PROTOCOL.md section 9.1). The
binary goes into the run's temporary directory and is never kept.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from .runner import Child

SOURCE = Path(__file__).resolve().with_name("csub.c")
HEADER = Path("/usr/include/zmq.h")  # Debian libzmq3-dev (bench/peers/install.py)


def build(out_dir: Path) -> Path:
    """Compile csub.c into `out_dir`; raise with the compiler's words if it fails."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise RuntimeError("no C compiler (gcc) to build the C SUB")
    binary = out_dir / "csub"
    out = subprocess.run(
        [cc, "-O2", "-Wall", "-o", str(binary), str(SOURCE), "-lzmq"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0:
        raise RuntimeError(f"building the C SUB failed: {out.stderr.strip()[-600:]}")
    return binary


def start(
    binary: Path,
    *,
    endpoint: str,
    topic: str,
    cfg: dict[str, Any],
    stamped: bool,
    log_dir: Path,
    name: str = "csub",
) -> Child:
    """The C SUB on `endpoint` (a node's local PUB), subscribed to `topic`, expecting
    `cfg["count"]` messages; `stamped`: payloads carry the send time (latency)."""
    argv = [
        str(binary), endpoint, topic, str(cfg["count"]),
        "--idle", str(cfg["idle_s"]),
        "--timeout", str(cfg["timeout_s"]),
        "--sample-every", str(cfg.get("sample_every", 1)),
    ]  # fmt: skip
    if stamped:
        argv += ["--samples", str(cfg["samples_path"])]
    else:
        argv.append("--no-stamp")
    return Child("csub", "sub", cfg, log_dir, name, argv=argv)
