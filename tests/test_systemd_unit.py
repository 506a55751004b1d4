"""systemd/zdps.service, zdps@.service and zdps-gateway.service pass ``systemd-analyze
verify``, run zdps where README says, and score "OK" or better in ``systemd-analyze
security --offline``.

verify checks that ExecStart's program exists on this machine, and the unit names
/opt/zdps/bin/zdps, where README installs zdps. Where that path exists the unit is
verified exactly as shipped. Where it does not, the shipped unit must fail verify on
that one point alone, and a copy differing only in ExecStart's program, pointed at
this checkout's own zdps (the same console script), must verify with nothing to say.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
UNIT = ROOT / "systemd" / "zdps.service"
TEMPLATE = ROOT / "systemd" / "zdps@.service"  # one node per /etc/zdps/NAME.toml
GATEWAY = ROOT / "systemd" / "zdps-gateway.service"  # docs/GATEWAY.md
ALL = pytest.mark.parametrize("unit", [UNIT, TEMPLATE, GATEWAY], ids=["zdps", "zdps@", "gateway"])
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
@ALL
def test_the_units_pass_systemd_analyze_verify(unit: Path, tmp_path: Path) -> None:
    code, said = verify(unit)
    if Path(PROGRAM).exists():
        assert (code, said) == (0, [])
        return
    assert code != 0
    shown = unit.name.replace("@.", "@i.")  # a template is verified as its instance "i"
    assert said == [f"{shown}: Command {PROGRAM} is not executable: No such file or directory"]

    program = Path(sys.executable).with_name("zdps")
    assert program.exists(), f"{program}: the project is not installed in this venv"
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace(f"ExecStart={PROGRAM} ", f"ExecStart={program} "))
    assert copy.read_text() != unit.read_text()
    assert verify(copy) == (0, [])


@needs_analyze
@ALL
def test_the_units_are_notify_with_a_watchdog_and_score_ok_or_better(unit: Path) -> None:
    text = unit.read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text and "NotifyAccess=main" in text
    assert ANALYZE is not None
    done = subprocess.run(
        [ANALYZE, "security", "--offline=yes", str(unit)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", done.stdout)
    assert match, done.stdout + done.stderr
    print(f"{unit.name}: exposure {match[1]} {match[2]}")
    assert float(match[1]) <= 2.0 and match[2] in ("OK", "SAFE")


def test_the_template_differs_from_the_unit_only_per_instance() -> None:
    unit = [line for line in UNIT.read_text().splitlines() if not line.startswith("#")]
    template = [line for line in TEMPLATE.read_text().splitlines() if not line.startswith("#")]
    differ = [(a, b) for a, b in zip(unit, template, strict=True) if a != b]
    assert all("%i" in b for _, b in differ) and len(differ) == 4, differ
