"""What an operator is told, over real daemons: a node id used twice, seeds that never
answer, and bad input naming who sent it (README "Logs", docs/PROTOCOL.md §4.1, §4.2).

* a node started with the id of a running node (a copied config file) exits 1 and
  says which endpoint has its id; the running node logs the clash and shows it in
  ``status``; in a three-node cluster the earlier node is readmitted once it left;
* a seed where nothing listens, a seed that is a node's API endpoint and one that is
  its pub endpoint are each warned about with what was found there, and ``status``
  and ``zdps status`` show each seed's state;
* a bad API frame is logged with the client's identity and address;
* a node frozen long enough to be declared dead logs, once it runs again, that it was
  readmitted; its peer logs the suspicion, the death and the return.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess

import msgpack
import pytest
import zmq

from tests.cluster.harness import Cluster, NodeProc, free_port, wait_for, zdps_command
from zdps.core.seeds import CONNECTION, WARN_AFTER
from zdps.wire import PROTOCOL_VERSION

pytestmark = pytest.mark.timeout(120)


def start_same_id(cluster: Cluster, node_id: str, seed: NodeProc, name: str) -> tuple:
    """A second ``zdps start`` with ``node_id`` on fresh ports, seeded with ``seed``."""
    endpoints = [f"tcp://127.0.0.1:{free_port()}" for _ in range(4)]
    args = ["start", "--node-id", node_id, "--cluster", endpoints[0], "--api", endpoints[1]]
    args += ["--pub", endpoints[2], "--batch-pub", endpoints[3], "--seed", seed.cluster]
    proc, _out, err = cluster.spawn(*args, name=name)
    return proc, err, endpoints[0]


def test_a_second_node_with_a_taken_id_refuses_to_start(cluster: Cluster) -> None:
    a = cluster.start("A")
    proc, err, endpoint = start_same_id(cluster, "A", a, "twin")
    assert proc.wait(20) == 1
    message = f"node id 'A' is already used by the node at {a.cluster}"
    assert message in err.read_text(), err.read_text()
    assert "refused_to_run" in err.read_text()
    status = wait_for(lambda: (s := a.status())["clashes"] and s, 5, "the clash in status")
    assert [c["endpoint"] for c in status["clashes"]] == [endpoint]
    assert status["counters"]["id_clashes"] == 1 and status["peers"] == []
    assert f"node_id_clash node=A other={endpoint}" in a.logs()
    assert a.proc.poll() is None
    shown = cluster.run("status", "--node", a.api)
    assert f"CLASH     node id A is also used by the node at {endpoint}" in shown.stdout


def test_in_a_cluster_the_later_twin_stops_and_the_first_is_taken_back(cluster: Cluster) -> None:
    a = cluster.start("A")
    b = cluster.start("B", seeds=[a])
    cluster.wait_mesh()
    proc, err, endpoint = start_same_id(cluster, "A", b, "twin")
    assert proc.wait(20) == 1, err.read_text()
    assert "is already used by the node at" in err.read_text()
    wait_for(lambda: f"node_id_clash node=A other={endpoint}" in a.logs(), 10, "A to log it")
    # B took the twin for a restart of A; once the twin has left, A is B's peer again.
    wait_for(lambda: b.alive_peers() == {"A"} and a.alive_peers() == {"B"}, 30, "A and B again")
    assert b.status()["peers"][0]["endpoint"] == a.cluster


def test_silent_seeds_are_reported_with_what_is_at_their_endpoint(cluster: Cluster) -> None:
    other = cluster.start("O")
    nothing = f"tcp://127.0.0.1:{free_port()}"
    seeds = [nothing, other.api, other.pub]
    port = free_port()
    args = [*zdps_command(), "start", "--node-id", "S", "--cluster", f"tcp://127.0.0.1:{port}"]
    args += ["--api", f"tcp://127.0.0.1:{free_port()}", "--pub", f"tcp://127.0.0.1:{free_port()}"]
    args += ["--batch-pub", f"tcp://127.0.0.1:{free_port()}"]
    for seed in seeds:
        args += ["--seed", seed]
    log = cluster.workdir / "S.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    cluster.procs.append(proc)
    api = args[args.index("--api") + 1]
    node = NodeProc("S", f"tcp://127.0.0.1:{port}", api, "", "", proc, log)
    expected = {nothing: "refused", other.api: "zeromq", other.pub: "rejected"}

    def warned() -> dict[str, str]:
        found = re.findall(r'seed_silent seed=(\S+) waited_s=\S+ why="([^"]+)"', node.logs())
        return dict(found)

    whys = wait_for(lambda: len(w := warned()) == 3 and w, WARN_AFTER + 10, "three warnings")
    assert whys == {seed: CONNECTION[kind] for seed, kind in expected.items()}
    rows = {row["endpoint"]: row for row in node.status()["seeds"]}
    assert list(rows) == seeds
    for seed, kind in expected.items():
        assert rows[seed]["state"] == "waiting" and rows[seed]["connection"] == kind
        assert rows[seed]["waiting_s"] >= WARN_AFTER and rows[seed]["hellos"] >= 3
    shown = cluster.run("status", "--node", api).stdout
    assert f"  {nothing:<28} no answer for " in shown and "nothing listens there" in shown
    assert other.status()["peers"] == []  # nobody was fooled into a join


def test_a_seed_that_answers_shows_who_answered(cluster: Cluster) -> None:
    a = cluster.start("A")
    b = cluster.start("B", seeds=[a])
    cluster.wait_mesh()
    (row,) = b.status()["seeds"]
    assert (row["endpoint"], row["state"], row["node"]) == (a.cluster, "answered", "A")
    assert f"  {a.cluster:<28} answered by A" in cluster.run("status", "--node", b.api).stdout
    assert "seed_silent" not in b.logs()


def test_bad_api_input_is_logged_with_the_client_and_its_address(cluster: Cluster) -> None:
    a = cluster.start("A")
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(a.api)
    sock.send(msgpack.packb([PROTOCOL_VERSION, "req", 5, "status", "not a map"]))
    assert sock.poll(5000)
    sock.close()
    line = wait_for(
        lambda: next((x for x in a.logs().splitlines() if "bad_input" in x), None), 5, "a line"
    )
    assert re.search(
        r'what="request from client [0-9a-f]{10}: .*\(connection from 127\.0\.0\.1\)"', line
    ), line


def test_a_frozen_node_declared_dead_logs_its_readmission(
    cluster: Cluster,
) -> None:
    a = cluster.start("A")
    b = cluster.start("B", seeds=[a])
    cluster.wait_mesh()
    b.proc.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: "peer_down node=B reason=dead" in a.logs(), 10, "A to declare B dead")
    finally:
        b.proc.send_signal(signal.SIGCONT)
    cluster.wait_mesh(15)
    logs = a.logs()
    assert "suspect node=B by=A" in logs and "peer_up node=B " in logs.split("peer_down")[-1]
    # What A told B while B was frozen may be gone with the links A closed; its redial
    # says it all: B learns it had been declared dead.
    assert "readmitted by=A" in b.logs(), b.logs()


def test_log_format_json_writes_one_object_per_line(cluster: Cluster) -> None:
    node = cluster.start("A", log_format="json")
    node.proc.send_signal(signal.SIGTERM)
    assert node.exit_code(10) == 0
    lines = [json.loads(line) for line in node.logs().splitlines()]
    events = [line["event"] for line in lines]
    assert events[0] == "ready" and "leaving" in events
    assert all(line["node"] == "A" and line["level"] and line["time"] for line in lines)
    assert lines[0]["scope"] == "default" and lines[0]["security"] == "none"


def test_sigabrt_writes_every_threads_stack_to_the_log(cluster: Cluster) -> None:
    """For a node that seems stuck (docs/DEPLOY.md §7): its stacks, then it dies."""
    node = cluster.start("A")
    node.proc.send_signal(signal.SIGABRT)
    assert node.proc.wait(10) == -signal.SIGABRT
    logs = node.logs()
    assert "Fatal Python error: Aborted" in logs and "in run" in logs, logs[-2000:]
