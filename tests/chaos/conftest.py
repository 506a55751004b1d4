"""The lab fixture, and the chaos summary line at the end of the test run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.figures import Figures
from tests.chaos.netlab import NetLab, available

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
