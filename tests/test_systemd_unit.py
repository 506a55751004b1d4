"""systemd/zdps.service passes ``systemd-analyze verify`` and runs zdps where README says.

verify checks that ExecStart's program exists on this machine, and the unit names
/opt/zdps/bin/zdps, where README installs zdps. Where that path exists the unit is
verified exactly as shipped. Where it does not, the shipped unit must fail verify on
that one point alone, and a copy differing only in ExecStart's program, pointed at
this checkout's own zdps (the same console script), must verify with nothing to say.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
UNIT = ROOT / "systemd" / "zdps.service"
README = ROOT / "README.md"
PROGRAM = "/opt/zdps/bin/zdps"
EXEC_START = f"ExecStart={PROGRAM} start --config /etc/zdps/zdps.toml"
INSTALL = "python3 -m venv /opt/zdps && /opt/zdps/bin/pip install ."
ANALYZE = shutil.which("systemd-analyze")

pytestmark = pytest.mark.timeout(60)
needs_analyze = pytest.mark.skipif(
    ANALYZE is None,
    reason="systemd-analyze not found (Debian package systemd; .ci/run installs it as root)",
)


def verify(unit: Path) -> tuple[int, list[str]]:
    """``systemd-analyze verify``'s exit status and what it printed, line by line."""
    assert ANALYZE is not None
    done = subprocess.run(
        [ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=30
    )
    return done.returncode, (done.stdout + done.stderr).splitlines()


def test_the_unit_and_readme_say_where_zdps_is_installed() -> None:
    text = UNIT.read_text()
    lines = text.splitlines()
    assert [line for line in lines if line.startswith("ExecStart")] == [EXEC_START]
    comments = " ".join(line.lstrip("# ") for line in lines if line.startswith("#"))
    assert INSTALL in comments
    for protected in ("/home", "/root"):  # ProtectHome=yes hides them from the service
        assert protected in comments
    readme = README.read_text()
    assert INSTALL in readme and EXEC_START.removeprefix("ExecStart=") in readme


@needs_analyze
def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    code, said = verify(UNIT)
    if Path(PROGRAM).exists():
        assert (code, said) == (0, [])
        return
    assert code != 0
    assert said == [f"zdps.service: Command {PROGRAM} is not executable: No such file or directory"]

    program = Path(sys.executable).with_name("zdps")
    assert program.exists(), f"{program}: the project is not installed in this venv"
    copy = tmp_path / "zdps.service"
    copy.write_text(UNIT.read_text().replace(f"ExecStart={PROGRAM} ", f"ExecStart={program} "))
    assert copy.read_text() != UNIT.read_text()
    assert verify(copy) == (0, [])
