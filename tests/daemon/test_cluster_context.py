"""The daemon's ZeroMQ context takes a socket per link to every peer it may hold
(zdps/daemon/links.py ``cluster_context``): libzmq's default of 1,023 sockets stopped a
node at about 500 peers, two links each. Its IO thread runs SCHED_BATCH where a thread
may."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import zmq

from zdps.daemon.links import _batch_allowed, cluster_context, term_within
from zdps.settings import default

pytestmark = pytest.mark.timeout(60)


def test_a_node_of_600_peers_opens_both_links_to_each() -> None:
    ctx = cluster_context(600)
    sockets = []
    try:
        for _ in range(2 * 600):  # 1,200: over libzmq's default
            sockets.append(ctx.socket(zmq.DEALER))
    finally:
        for sock in sockets:
            sock.close(linger=0)
        ctx.term()
    assert len(sockets) == 1200


def test_the_default_max_peers_has_room_for_links_and_redials() -> None:
    ctx = cluster_context(default("max_peers"))
    try:
        assert ctx.get(zmq.MAX_SOCKETS) >= 4 * default("max_peers")
    finally:
        ctx.term()


def test_a_context_that_does_not_terminate_is_given_up_on_in_time() -> None:
    """A socket left open keeps ``term`` waiting for good: the daemon leaves anyway."""
    ctx = cluster_context(10)
    left_open = ctx.socket(zmq.DEALER)
    began = time.monotonic()
    assert not term_within(ctx, 0.3)
    assert time.monotonic() - began < 2.0
    left_open.close(linger=0)  # the waiting term now returns, and its thread ends


def test_a_context_whose_sockets_are_closed_terminates() -> None:
    ctx = cluster_context(10)
    ctx.socket(zmq.DEALER).close(linger=0)
    assert term_within(ctx, 5.0)


def _io_thread_policies(max_peers: int) -> set[int]:
    """The scheduling policies of the IO threads a new cluster context starts."""
    tasks = Path("/proc/self/task")

    def io_threads() -> set[int]:
        return {
            int(t.name) for t in tasks.iterdir() if (t / "comm").read_text().startswith("ZMQbg/IO")
        }

    before = io_threads()
    ctx = cluster_context(max_peers)
    sock = ctx.socket(zmq.DEALER)  # libzmq starts its threads with the first socket
    try:
        # An IO thread takes its policy, then its name, once it runs: wait for the name.
        deadline = time.monotonic() + 10
        while not (started := io_threads() - before):
            assert time.monotonic() < deadline, "no IO thread started"
            time.sleep(0.001)
        return {os.sched_getscheduler(tid) for tid in started}
    finally:
        sock.close(linger=0)
        ctx.term()


def test_its_io_thread_does_not_preempt_the_loop_that_wakes_it() -> None:
    """SCHED_BATCH: a woken batch thread waits for the loop's turn to end (or a core)."""
    if not _batch_allowed():
        pytest.skip("no thread of this process may take SCHED_BATCH here")
    assert _io_thread_policies(10) == {os.SCHED_BATCH}


def test_where_no_thread_may_run_sched_batch_the_io_thread_keeps_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """libzmq aborts the process if its IO thread cannot take the policy it was given."""

    def refused(*_args: object) -> None:
        raise PermissionError("sched_setscheduler: not here")

    monkeypatch.setattr(os, "sched_setscheduler", refused)
    assert _io_thread_policies(10) == {os.SCHED_OTHER}
