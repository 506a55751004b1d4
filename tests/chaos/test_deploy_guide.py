"""docs/DEPLOY.md, tried on three namespaced hosts with the guide's own config and rules.

Hosts a, b, c, an outsider x and the Prometheus host p; the guide's 10.0.0.N addresses
become the lab's. Each host's /etc/zdps is a directory of its own, and the node runs
what the unit runs (`zdps start --config …`, with the drop-in's environment). The
install step (a venv under /opt) is not repeated here: the zdps under test runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.chaos.netlab import Host, NetLab
from tests.cluster.harness import wait_for, zdps_command

pytestmark = pytest.mark.timeout(180)

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "DEPLOY.md"
NAMES = ["a", "b", "c"]


def blocks(start: str) -> list[str]:
    """The guide's fenced blocks whose first line starts with ``start``."""
    found = re.findall(r"^```[a-z]*\n(.*?)^```", GUIDE.read_text(), re.S | re.M)
    return [block for block in found if block.startswith(start)]


def localized(text: str, lab: NetLab, prometheus: Host) -> str:
    return text.replace("10.0.0.9", prometheus.address).replace("10.0.0.", f"{lab.subnet}.")


def own_config(text: str, name: str, address: str) -> str:
    """Host a's config made host ``name``'s: its id, and its address where it is its own."""
    lines = []
    for line in text.splitlines():
        if line.startswith("node_id"):
            line = f'node_id = "{name}"'
        elif line.startswith(("advertise", "metrics")):
            line = re.sub(r"\d+\.\d+\.\d+\.\d+", address, line)
        lines.append(line)
    return "\n".join(lines) + "\n"


def run_in(host: Host, *args: str, env: dict[str, str] | None = None, check: bool = True):
    done = subprocess.run(
        ["ip", "netns", "exec", host.netns, *args],
        capture_output=True, text=True, timeout=30, env={**os.environ, **(env or {})},
    )  # fmt: skip
    assert not check or done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def fetch(host: Host, url: str) -> str | None:
    """``url`` read from inside ``host`` (None: refused or silent for 2 s)."""
    code = f"import urllib.request as u; print(u.urlopen({url!r}, timeout=2).read().decode())"
    done = run_in(host, sys.executable, "-c", code, check=False)
    return done.stdout if done.returncode == 0 else None


def alive(host: Host) -> set[str] | None:
    done = run_in(host, *zdps_command(), "status", "--json", "--timeout", "1", check=False)
    if done.returncode:
        return None
    return {p["node"] for p in json.loads(done.stdout)["peers"] if p["state"] == "alive"}


@pytest.mark.skipif(shutil.which("nft") is None, reason="nftables (nft) is not installed")
def test_the_deploy_guide_on_three_hosts(lab: NetLab) -> None:
    hosts = [lab.add_host() for _ in range(5)]
    nodes, outsider, prometheus = dict(zip(NAMES, hosts, strict=False)), hosts[3], hosts[4]
    (config,) = blocks('node_id = "a"')
    (rules,) = blocks("table inet zdps")
    etc = {name: lab.workdir / name / "etc" / "zdps" for name in NAMES}
    for name in NAMES:  # step 2: keys; every public key in every host's peers directory
        (etc[name] / "peers").mkdir(parents=True)
        keygen = subprocess.run([*zdps_command(), "keygen", name, "--dir", str(etc[name])])
        assert keygen.returncode == 0
    for name in NAMES:
        for other in NAMES:
            shutil.copy(etc[other] / f"{other}.key", etc[name] / "peers")
    env = {name: {"ZDPS_CURVE_SECRET_KEY": str(etc[name] / f"{name}.key_secret")} for name in NAMES}
    for name in NAMES:  # step 3: the guide's config, per host
        text = own_config(localized(config, lab, prometheus), name, nodes[name].address)
        (etc[name] / "zdps.toml").write_text(text.replace("/etc/zdps", str(etc[name])))
        check = [*zdps_command(), "config", "check", str(etc[name] / "zdps.toml")]
        checked = run_in(nodes[name], *check, env=env[name])
        assert checked.stdout.strip().endswith(": ok"), checked.stdout
    for name, host in nodes.items():  # step 4, without systemd: what ExecStart runs
        start(lab, host, etc[name], env[name])
    for name, host in nodes.items():  # step 6
        wait_for(lambda h=host, n=name: alive(h) == set(NAMES) - {n}, 20, f"{name}'s peers")
    (lab.workdir / "zdps.nft").write_text(localized(rules, lab, prometheus))
    for host in nodes.values():  # step 5
        run_in(host, "nft", "-f", str(lab.workdir / "zdps.nft"))
    metrics = fetch(prometheus, f"http://{nodes['a'].address}:9711/metrics")
    assert metrics and 'zdps_peers{state="alive"} 2.0' in metrics, metrics
    assert fetch(outsider, f"http://{nodes['a'].address}:9711/metrics") is None
    probe = f"import socket; socket.create_connection(({nodes['a'].address!r}, 7710), timeout=1)"
    assert run_in(outsider, sys.executable, "-c", probe, check=False).returncode != 0
    zdps = [*zdps_command()]
    run_in(nodes["a"], *zdps, "publish", "t", "hello")
    got = run_in(nodes["a"], *zdps, "subscribe", "--since", "1", "--count", "1", "t")
    assert got.stdout == "hello\n"
    lines = "".join(f"m{i}\n" for i in range(20))
    for topic in range(10):
        published = subprocess.run(
            ["ip", "netns", "exec", nodes["b"].netns, *zdps, "publish", "--ack", "replicated",
             f"up.{topic}"], input=lines, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert published.returncode == 0, published.stderr
    for name, host in nodes.items():  # step 7: `systemctl restart` on each host in turn
        assert host.proc is not None
        host.proc.send_signal(signal.SIGTERM)
        assert host.proc.wait(30) == 0
        log = (lab.workdir / f"{name}.log").read_text()
        assert re.search(r"drained .*unconfirmed=\[\]", log), log[-2000:]
        start(lab, host, etc[name], env[name])
        wait_for(lambda h=host, n=name: alive(h) == set(NAMES) - {n}, 20, f"{name} back")
    for topic in range(10):
        got = run_in(nodes["c"], *zdps, "subscribe", "--since", "1", "--count", "20", f"up.{topic}")
        assert got.stdout == lines, (topic, got.stdout)


def start(lab: NetLab, host: Host, etc: Path, env: dict[str, str]) -> None:
    name = etc.parent.parent.name
    with (lab.workdir / f"{name}.log").open("ab") as log:
        host.proc = subprocess.Popen(
            ["ip", "netns", "exec", host.netns, *zdps_command(), "start", "--config",
             str(etc / "zdps.toml")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **env},
        )  # fmt: skip
