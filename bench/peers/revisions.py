"""Revisions of zdps for `bench/ab`: each one copied into a directory of its own and
installed (not editable) into a virtual environment of its own.

A revision is a git revision (extracted with `git archive`, so the repository's
worktrees and index are left alone), or `.`: the working tree as it is now, uncommitted
changes included (the tracked and the untracked-but-not-ignored files, as
`git ls-files -co --exclude-standard` lists them).

Everything lives under the directory the caller gives (a temporary one, which the
caller removes); nothing is written to the repository.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from .runner import BENCH_DIR, stop, track

REPO = BENCH_DIR.parent
WORKING_TREE = "."
# Variables that would make a revision's interpreter import code other than its own.
_LEAKY_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV")


def clean_environ() -> None:
    """Drop from os.environ what could make a child import another copy of zdps."""
    for name in _LEAKY_ENV:
        os.environ.pop(name, None)


def git(*args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=120
    )
    if out.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {out.stderr.strip() or out.returncode}")
    return out.stdout


@dataclass
class Revision:
    side: str  # "base" or "head"
    rev: str  # as given on the command line
    root: Path  # this side's own directory: src/, venv/, logs/
    commit: str = ""  # the resolved commit (for ".", the HEAD the working tree is on)
    changed: list[str] = field(default_factory=list)  # for ".": `git status --porcelain`
    tree_sha256: str = ""  # over the copied files' paths and contents
    version: str = ""
    install_s: float = 0.0

    def __post_init__(self) -> None:
        if self.rev == WORKING_TREE:
            self.commit = git("rev-parse", "--verify", "HEAD^{commit}").strip()
            status = git("status", "--porcelain", "--untracked-files=normal")
            self.changed = [line for line in status.splitlines() if line.strip()]
        else:
            if self.rev.startswith("-"):
                raise RuntimeError(f"not a revision: {self.rev!r}")
            self.commit = git("rev-parse", "--verify", f"{self.rev}^{{commit}}").strip()

    @property
    def src(self) -> Path:
        return self.root / "src"

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def zdps(self) -> Path:
        return self.venv / "bin" / "zdps"

    @property
    def logs(self) -> Path:
        path = self.root / "logs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def label(self) -> str:
        if self.rev == WORKING_TREE:
            extra = f" + {len(self.changed)} changed files" if self.changed else ", clean"
            return f"working tree ({self.commit[:7]}{extra})"
        short = self.commit[:7]
        return short if self.commit.startswith(self.rev) else f"{self.rev} ({short})"

    @property
    def reproducible_rev(self) -> str:
        """The revision to name in a command that reproduces the run."""
        if self.rev == WORKING_TREE or self.commit.startswith(self.rev):
            return self.rev
        return self.commit

    # ------------------------------------------------------------------ checkout

    def checkout(self) -> None:
        self.src.mkdir(parents=True)
        if self.rev == WORKING_TREE:
            names = git("ls-files", "-z", "-c", "-o", "--exclude-standard").split("\0")
            for name in sorted({n for n in names if n}):
                source = REPO / name
                if not source.is_file():  # deleted but still tracked, or a submodule
                    continue
                target = self.src / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target, follow_symlinks=False)
        else:
            archive = self.root / "src.tar"
            git("archive", "--format=tar", f"--output={archive}", self.commit)
            with tarfile.open(archive) as tar:
                tar.extractall(self.src, filter="data")
            archive.unlink()
        digest = hashlib.sha256()
        for path in sorted(p for p in self.src.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(self.src)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
        self.tree_sha256 = digest.hexdigest()

    # ------------------------------------------------------------------ install

    def start_install(self) -> subprocess.Popen:
        """`python3 -m venv`, then `pip install SRC`, as one child process group."""
        log = self.logs / "install.log"
        script = (
            f"{_q(sys.executable)} -m venv {_q(self.venv)} && "
            f"{_q(self.venv / 'bin' / 'pip')} install --quiet --disable-pip-version-check "
            f"--no-input {_q(self.src)}"
        )
        with log.open("wb") as out:
            return track(
                subprocess.Popen(
                    ["/bin/sh", "-c", script],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=self.root,
                    process_group=0,  # runner.AUTOGROUP
                )
            )

    def finish_install(self, proc: subprocess.Popen, timeout: float) -> None:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stop(proc)
            raise RuntimeError(
                f"{self.side}: pip install did not finish in {timeout:.0f} s"
            ) from None
        if proc.returncode != 0:
            tail = (self.logs / "install.log").read_text(errors="replace")[-1500:]
            raise RuntimeError(f"{self.side} ({self.label}): install failed:\n{tail}")
        # The revision's own copy, not this checkout's (no cwd or PYTHONPATH on sys.path).
        where = self.run_python("import zdps, zdps_cli; print(zdps.__file__)")
        if not Path(where).resolve().is_relative_to(self.venv.resolve()):
            raise RuntimeError(f"{self.side}: zdps imports from {where}, not from {self.venv}")
        out = subprocess.run(
            [str(self.zdps), "--version"], capture_output=True, text=True, timeout=60
        )
        self.version = out.stdout.strip() or out.stderr.strip()[-200:]

    def run_python(self, code: str, *args: str) -> str:
        """Run `code` with this revision's interpreter, isolated (-I), in its own dir."""
        out = subprocess.run(
            [str(self.python), "-I", "-c", code, *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.root,
            process_group=0,  # runner.AUTOGROUP
        )
        if out.returncode != 0:
            raise RuntimeError(f"{self.side}: python failed: {out.stderr.strip()[-800:]}")
        return out.stdout.strip()

    def topic_owned_by(self, owner: str, nodes: list[str], prefix: str = "ab") -> str:
        """A topic whose owner is `owner` on this revision's own HashRing over `nodes`."""
        code = (
            "import sys\n"
            "from zdps.core.ring import HashRing\n"
            "owner, prefix, nodes = sys.argv[1], sys.argv[2], sys.argv[3:]\n"
            "ring = HashRing(nodes)\n"
            "print(next(t for i in range(100_000) if ring.owner(t := f'{prefix}-{i}') == owner))\n"
        )
        return self.run_python(code, owner, prefix, *nodes)


def _q(path: object) -> str:
    return shlex.quote(str(path))
