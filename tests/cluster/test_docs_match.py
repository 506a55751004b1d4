"""README.md against what runs: the Python example and the status counters it documents.

The "From Python" snippet is taken from README.md and run as written (only its API
endpoint is replaced by a free port) against a single node started through the CLI,
the quickstart's setup; the counters and per-peer fields README lists are compared
with ``zdps.core.status.COUNTERS`` and with what a real node's ``status`` returns.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.harness import Cluster, NodeProc, wait_for
from zdps import Client, Message, PublishResult
from zdps.core.status import COUNTERS

pytestmark = pytest.mark.timeout(60)

README = Path(__file__).parents[2] / "README.md"
DEFAULT_API = "tcp://127.0.0.1:7711"


def _section(heading: str) -> str:
    """The text of README's section ``heading``, up to the next heading of any level."""
    text = README.read_text()
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    end = re.compile(r"^#{1,6} ", re.MULTILINE).search(text, start)
    return text[start : end.start() if end else len(text)]


def python_snippet() -> str:
    """The first ```python block of README's "From Python" section."""
    match = re.search(r"```python\n(.*?)```", _section("### From Python"), re.DOTALL)
    assert match, "README.md's From Python section has no python block"
    return match.group(1)


def documented_counters() -> dict[str, str]:
    """README's counters table: name to what it counts."""
    section = _section("### Counters")
    rows = re.findall(r"^\| `([a-z_]+)` \| (.+?) \|$", section, re.MULTILINE)
    return dict(rows)


def documented_peer_fields() -> list[str]:
    """The fields README says each entry of ``status["peers"]`` has, in its order."""
    paragraphs = _section("### Counters").split("\n\n")
    paragraph = next((p for p in paragraphs if p.startswith("Each peer")), "")
    return re.findall(r"`([a-z_]+)`", paragraph.partition(":")[2].partition(".")[0])


def test_the_readme_python_example_runs_on_the_quickstart_single_node(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run as written on one node; what its comments say it returns is what it returns."""
    node = cluster.start("solo")
    snippet = python_snippet()
    assert DEFAULT_API in snippet, "the example no longer uses the quickstart's api endpoint"
    namespace: dict[str, Any] = {}
    exec(compile(snippet.replace(DEFAULT_API, node.api), "README.md", "exec"), namespace)

    ack = namespace["ack"]
    assert ack == PublishResult(seq=1, nodes=1, subscribers=1)
    assert repr(ack) in snippet  # the comment shows the actual result
    msg = namespace["msg"]
    assert type(msg) is Message and (msg.topic, msg.seq, msg.data) == ("news", 1, b"hello")
    # ack="replicated" has no replica on one node: the example says what it gets then.
    printed = capsys.readouterr().out.split()
    assert printed == ["no_replica"] and "no_replica" in snippet
    replayed = namespace["replayed"]
    assert (replayed.seq, replayed.data) == (1, b"hello")
    assert node.counters()["published"] == 2  # hello, and the refused replicated one


def test_recv_returns_none_on_timeout_as_the_readme_says(cluster: Cluster) -> None:
    node = cluster.start("solo")
    section = _section("### From Python")
    assert re.search(r"`None`\s+(if\s+nothing\s+arrives|on\s+timeout)", section), section
    with Client(node.api) as client, client.subscribe("quiet") as sub:
        assert sub.recv(timeout=0.2) is None


def test_the_readme_documents_every_counter_and_peer_field(cluster: Cluster) -> None:
    """README's counter table is COUNTERS, in order, and it is what status shows."""
    counters = documented_counters()
    assert list(counters) == list(COUNTERS)
    assert all(len(what) > 20 for what in counters.values()), counters
    # routed_to_owner counts topic creates and deletes too (zdps/core/routing.py).
    assert "create" in counters["routed_to_owner"] and "delete" in counters["routed_to_owner"]

    a = cluster.start("A")
    b = cluster.start("B", seeds=[a])
    cluster.wait_mesh()
    status = a.status()
    assert list(status["counters"]) == list(COUNTERS)
    (peer,) = wait_for(lambda: a.status()["peers"], 10, "a peer entry")
    assert peer["node"] == b.node_id
    assert documented_peer_fields() == list(peer)


def _debug_lines(node: NodeProc) -> list[str]:
    return [line for line in node.logs().splitlines() if " DEBUG " in line]


def test_log_level_debug_in_any_case_logs_events_but_not_messages(cluster: Cluster) -> None:
    """``--log-level DEBUG`` is accepted like the TOML value, and logs a few useful lines:
    the settings, each client connection and its end, group changes, a status summary."""
    node = cluster.start("loud", log_level="DEBUG")
    quiet = cluster.start("quiet", log_level="info")
    with Client(node.api) as client, client.subscribe("dbg") as sub:
        wait_for(lambda: len(_debug_lines(node)) >= 5, 10, "debug lines")
        before = len(_debug_lines(node))
        for i in range(200):
            client.publish("dbg", b"m%d" % i)
        assert [m.seq for m in (sub.recv(timeout=5) for _ in range(200)) if m] == [*range(1, 201)]
        assert len(_debug_lines(node)) - before < 20  # not one per message
    log = "\n".join(_debug_lines(node))
    assert "settings node_id=loud " in log and "log_level=debug" in log
    assert re.search(r"api connection from 127\.0\.0\.1:\d+ accepted", log), log
    assert re.search(r"pub connection from 127\.0\.0\.1:\d+ accepted", log), log
    assert "local groups 0 -> 1" in log
    wait_for(
        lambda: re.search(r"pub connection from 127\.0\.0\.1:\d+ closed", node.logs()),
        5,
        "the subscriber's disconnection in the log",
    )
    assert re.search(r"status peers=- ring=1 groups=\d+/\d+ ", log), log
    assert quiet.status()["node"] == "quiet" and not _debug_lines(quiet)
