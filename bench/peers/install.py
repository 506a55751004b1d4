"""Idempotent installation of what the comparison needs: Debian servers and pip clients.

Only what is missing is installed: `apt-get update` runs at most once, and only when a
Debian package is missing; pip runs only for distributions that are not installed.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

# executable -> Debian package
APT_PACKAGES = {"redis-server": "redis-server", "nats-server": "nats-server", "gcc": "gcc"}
# file -> Debian package: the header the C SUB (peers/csub.c) is built against
APT_FILES = {Path("/usr/include/zmq.h"): "libzmq3-dev"}
# distribution name (as importlib.metadata knows it) -> pip requirement
PIP_PACKAGES = {
    "redis": "redis[hiredis]",
    "hiredis": "hiredis",
    "nats-py": "nats-py",
    "zeromq-pyre": "zeromq-pyre",  # the import name is `pyre`
    "matplotlib": "matplotlib",
    "psutil": "psutil",
}
POLICY_RC = Path("/usr/sbin/policy-rc.d")


def _log(message: str) -> None:
    print(f"[install] {message}", file=sys.stderr, flush=True)


def missing_apt() -> list[str]:
    return [pkg for exe, pkg in APT_PACKAGES.items() if not find_executable(exe)] + [
        pkg for path, pkg in APT_FILES.items() if not path.exists()
    ]


def find_executable(name: str) -> str | None:
    """`redis-server` and `nats-server` live in /usr/bin; look there too if PATH is thin."""
    return shutil.which(name) or shutil.which(name, path="/usr/local/bin:/usr/bin:/usr/sbin")


def missing_pip() -> list[str]:
    missing = []
    for dist, requirement in PIP_PACKAGES.items():
        try:
            importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            missing.append(requirement)
    return missing


def install_apt(packages: list[str]) -> None:
    if os.geteuid() != 0:
        names = " ".join(packages)
        raise SystemExit(f"missing Debian packages: run as root, or `apt-get install {names}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Keep apt from starting the system services: the benchmark starts its own servers on
    # free loopback ports. Only add the policy file if there is none, and remove it after.
    added_policy = False
    if not POLICY_RC.exists():
        POLICY_RC.write_text("#!/bin/sh\nexit 101\n")
        POLICY_RC.chmod(0o755)
        added_policy = True
    try:
        _log("apt-get update")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
        _log(f"apt-get install {' '.join(packages)}")
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
            check=True,
            env=env,
            timeout=900,
        )
    finally:
        if added_policy:
            POLICY_RC.unlink(missing_ok=True)


def install_pip(requirements: list[str]) -> None:
    _log(f"pip install {' '.join(requirements)}")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", *requirements],
        check=True,
        timeout=900,
    )
    importlib.invalidate_caches()


def ensure_zdps(repo: Path) -> str | None:
    """Install this checkout of zdps (editable) if no zdps is installed; return a warning
    when the installed zdps is not this checkout (the benchmark would measure that one)."""
    try:
        importlib.metadata.version("zdps")
    except importlib.metadata.PackageNotFoundError:
        _log(f"pip install -e {repo}")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "-e", str(repo)],
            check=True,
            timeout=900,
        )
        importlib.invalidate_caches()
        return None
    out = subprocess.run(
        [sys.executable, "-c", "import zdps; print(zdps.__file__)"],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=60,
    )
    location = Path(out.stdout.strip() or "/nonexistent").resolve()
    if repo.resolve() not in location.parents:
        return f"the installed zdps ({location}) is not this checkout ({repo})"
    return None


def ensure_installed() -> None:
    """Install whatever is missing; a no-op when everything is present."""
    apt = missing_apt()
    if apt:
        install_apt(apt)
    else:
        _log("Debian packages present: " + ", ".join([*APT_PACKAGES.values(), *APT_FILES.values()]))
    pip = missing_pip()
    if pip:
        install_pip(pip)
    else:
        _log("pip packages present: " + ", ".join(PIP_PACKAGES))
    still = missing_apt() + missing_pip()
    if still:
        raise SystemExit(f"still missing after installation: {still}")
