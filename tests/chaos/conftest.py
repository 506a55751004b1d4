"""The lab and kinds fixtures, and the chaos summary line at the end of the test run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos import faults
from tests.chaos.faults import KINDS
from tests.chaos.figures import Figures
from tests.chaos.netlab import NetLab, available, delay_available, firewall_available
from tests.chaos.workload import ACK, FIRST_SEED, MODE

REASON = available()
FIGURES = pytest.StashKey[Figures]()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[NetLab]:
    if REASON:
        pytest.skip(REASON)
    net = NetLab(tmp_path)
    try:
        yield net
    finally:
        net.destroy()


@pytest.fixture(scope="session")
def chaos_figures(request: pytest.FixtureRequest) -> Figures:
    """Figures every schedule adds to; printed once, after the run (see below)."""
    return request.config.stash.setdefault(FIGURES, Figures())


@pytest.fixture(scope="session")
def kinds(chaos_figures: Figures) -> tuple[str, ...]:
    """The fault kinds this machine can inject (asked once for every workload); skips
    the schedules if it can inject none."""
    chaos_figures.mode = f"{MODE} (first seed {FIRST_SEED})"
    chaos_figures.ack_level = ACK
    reason = available() or firewall_available()
    if reason:
        chaos_figures.skipped = reason
        pytest.skip(reason)
    if ACK != "replicated":
        chaos_figures.notes.append("acks at owner level (no --ack replicated): losses only counted")
    delay_reason = delay_available()
    if delay_reason:
        chaos_figures.notes.append(f"delay skipped: {delay_reason}")
        return tuple(k for k in KINDS if k != faults.DELAY)
    chaos_figures.notes.append(f"delay {faults.DELAY_S * 1000:.0f} ms by NFQUEUE")
    return KINDS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config):
    """Print the one summary line (also without -s) and keep it in chaos-summary.txt."""
    figures = config.stash.get(FIGURES, None)
    if figures is None or not (figures.schedules or figures.skipped):
        return
    line = figures.line()
    terminalreporter.write_line(line)
    path = Path(config.rootpath) / ".pytest_cache" / "chaos-summary.txt"
    path.parent.mkdir(exist_ok=True)
    path.write_text(line + "\n")
