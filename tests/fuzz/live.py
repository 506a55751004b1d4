"""The live fuzzer: hostile multipart messages to the cluster, API and PUB sockets of a
running cluster, while legitimate publish/subscribe goes on.

The nodes speak CURVE (docs/PROTOCOL.md §2.1) and the fuzzer holds an allowed key of
its own (node F): its envelopes reach the nodes' cores as a member's would, whatever
they claim, and a few go out with keys nobody allowed. Without CURVE any process that
reaches a cluster socket can speak for any node (§2.1), which a fuzzer would only
show again.

    python -m tests.fuzz.live --messages 1000000 --seed 7     # a long run, its figures

starts three nodes on loopback (tests/cluster/harness.py), runs the fuzzer and the
legitimate traffic side by side, and prints what was sent, what the nodes counted as
bad input, and whether every node lived and every legitimate message arrived.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from tests.cluster.harness import Cluster, NodeProc, free_port, wait_for
from tests.fuzz import frames
from zdps import Client, ZdpsError
from zdps.keys import CurveClient, generate, read_key

RECONNECT_EVERY = 5000  # messages per target between two fresh connections
MAX_GROUPS = 300  # distinct groups one subscription socket holds at most


@dataclass
class Figures:
    """What the fuzzer sent (per target and kind) and what the nodes made of it."""

    sent: Counter = field(default_factory=Counter)
    dropped: int = 0  # not queued: ZeroMQ's high-water mark
    unsafe: int = 0  # made, then not sent: it named an endpoint that is not loopback
    seconds: float = 0.0

    def line(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.sent.items()))
        total = sum(self.sent.values())
        return (
            f"fuzz: {total} messages in {self.seconds:.1f} s ({kinds}); "
            f"dropped at the HWM {self.dropped}; withheld as unsafe {self.unsafe}"
        )


class Target:
    """The fuzzer's sockets to one node, made afresh now and then (new identities): the
    cluster socket with the fuzzer's own allowed key (as a member gone bad would), a
    stranger's (no allowed key: its handshakes fail), the API and the PUB."""

    def __init__(self, ctx: zmq.Context, node: NodeProc, keys: Keys | None) -> None:
        self.ctx, self.node, self.keys = ctx, node, keys
        self.sockets: dict[str, zmq.Socket] = {}
        self.groups: set[bytes] = set()
        self.reconnect()

    def reconnect(self) -> None:
        for sock in self.sockets.values():
            sock.close(0)
        self.groups.clear()
        node, keys = self.node, self.keys
        member = stranger = None  # without CURVE both are plain, the same
        if keys is not None:
            server = keys.public[node.node_id]
            member = CurveClient(keys.public["F"], keys.secret["F"], server)
            stranger = CurveClient(*zmq.curve_keypair(), server)
        kinds = {
            "cluster": (zmq.DEALER, node.cluster, member),
            "stranger": (zmq.DEALER, node.cluster, stranger),
            "api": (zmq.DEALER, node.api, None),
            "pub": (zmq.XSUB, node.pub, None),
        }
        for name, (kind, endpoint, curve) in kinds.items():
            sock = self.ctx.socket(kind)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 20_000)
            if curve is not None:
                curve.apply(sock)
            sock.connect(endpoint)
            self.sockets[name] = sock

    def drain_replies(self) -> None:
        """Read what the API answered, so that the node never holds replies for us."""
        api = self.sockets["api"]
        while api.poll(0):
            api.recv_multipart()


@dataclass
class Keys:
    """CURVE keys of the nodes A, B, C and of the fuzzer's node F, all in one allow-list."""

    directory: Path
    public: dict[str, bytes] = field(default_factory=dict)
    secret: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        peers = self.directory / "peers"
        peers.mkdir(parents=True)
        for name in "ABCF":
            public, secret = generate(self.directory / name, name)
            (peers / public.name).write_bytes(public.read_bytes())
            key = read_key(secret)
            self.public[name], self.secret[name] = key.public, key.secret or b""

    def flags(self, name: str) -> dict[str, str]:
        secret = self.directory / name / f"{name}.key_secret"
        return {"curve_secret_key": str(secret), "curve_peers": str(self.directory / "peers")}


def start_cluster(cluster: Cluster, curve: bool = True) -> tuple[list[NodeProc], Keys | None]:
    """Three nodes meshed on loopback: with CURVE, F's key is allowed too (the fuzzer's)."""
    keys = Keys(cluster.workdir / "keys") if curve else None
    flags = keys.flags if keys is not None else lambda name: {}
    a = cluster.start("A", **flags("A"))
    seed = f"A@{a.cluster}" if curve else a.cluster
    b = cluster.start("B", seed=seed, **flags("B"))
    c = cluster.start("C", seed=seed, **flags("C"))
    cluster.wait_mesh()
    return [a, b, c], keys


def one_message(
    rng: random.Random, target: Target, me: frames.Peer, others: list[frames.Peer], port: int
) -> tuple[str, list[bytes]]:
    """(kind, frames) of one hostile message for one of the target's sockets."""
    roll = rng.random()
    if roll < 0.45:
        name, body = "cluster", frames.envelope(rng, me, others, port)
    elif roll < 0.8:
        name, body = "api", frames.api_frame(rng, port)
    elif roll < 0.81:
        name, body = "stranger", frames.envelope(rng, me, others, port)
    else:
        return "pub", [subscription(rng, target)]
    kind = name
    if rng.random() < 0.15:
        body, kind = frames.damaged(rng, body), f"{name}-damaged"
    elif rng.random() < 0.05:
        body, kind = rng.randbytes(rng.randrange(0, 64)), f"{name}-random"
    parts = [body]
    if rng.random() < 0.05:
        parts += [rng.randbytes(rng.randrange(0, 16)) for _ in range(rng.randrange(1, 3))]
        kind += "-multipart"
    return kind, parts


def subscription(rng: random.Random, target: Target) -> bytes:
    """A subscribe or unsubscribe for the XPUB (a valid group, or anything), or junk."""
    roll = rng.random()
    if roll < 0.1:
        return rng.randbytes(rng.randrange(0, 20))
    if target.groups and (roll < 0.35 or len(target.groups) >= MAX_GROUPS):
        return b"\x00" + rng.choice(sorted(target.groups))
    group = rng.choice(
        [b"fz.%d\x00" % rng.randrange(1000), b"fz.", rng.randbytes(rng.randrange(8))]
    )
    target.groups.add(group)
    return b"\x01" + group


def fuzz(nodes: list[NodeProc], keys: Keys | None, messages: int, seed: int) -> Figures:
    """Send ``messages`` hostile messages, spread over every node's sockets."""
    rng = random.Random(seed)
    port = free_port()  # where the made-up endpoints point: nothing listens there
    others = []
    for node in nodes:
        status = node.status()
        others.append(frames.Peer(status["node"], status["incarnation"], status["scope"]))
    me = frames.Peer("F", time.time_ns(), others[0].scope)
    ctx = zmq.Context()
    targets = [Target(ctx, node, keys) for node in nodes]
    figures = Figures()
    started = time.monotonic()
    try:
        for index in range(messages):
            target = targets[index % len(targets)]
            if index and index % RECONNECT_EVERY < len(targets):
                target.reconnect()
            kind, parts = one_message(rng, target, me, others, port)
            if not all(frames.is_safe(part) for part in parts):
                figures.unsafe += 1
                continue
            try:
                target.sockets[kind.split("-")[0]].send_multipart(parts, zmq.NOBLOCK)
                figures.sent[kind] += 1
            except zmq.Again:
                figures.dropped += 1
            if index % 256 == 0:
                target.drain_replies()
    finally:
        figures.seconds = time.monotonic() - started
        ctx.destroy(0)
    return figures


@dataclass
class Legitimate:
    """Publishes with acks on one node, a subscriber on another: what reached whom."""

    pub: NodeProc
    sub: NodeProc
    topic: str = "legit"
    acked: list[bytes] = field(default_factory=list)
    failed: int = 0
    received: set[bytes] = field(default_factory=set)
    ready: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    @property
    def missing(self) -> set[bytes]:
        """Acknowledged, never received."""
        return set(self.acked) - self.received

    def run(self) -> None:
        try:
            with (
                Client(self.sub.api, timeout=5) as sub_client,
                Client(self.pub.api, timeout=5) as pub,
            ):
                subscription = sub_client.subscribe(self.topic)
                while not self.received:  # the subscription is in place
                    pub.publish(self.topic, b"warm-up")
                    self._read(subscription, 0.2)
                self.ready.set()
                index = 0
                while not self.stop.is_set():
                    payload = b"%d" % index
                    try:
                        pub.publish(self.topic, payload)
                        self.acked.append(payload)
                    except ZdpsError:
                        self.failed += 1
                    index += 1
                    self._read(subscription, 0)
                deadline = time.monotonic() + 10
                while self.missing and time.monotonic() < deadline:
                    self._read(subscription, 0.5)
                subscription.close()
        except BaseException as exc:  # the test reports it
            self.error = exc
            self.ready.set()

    def _read(self, subscription, wait: float) -> None:
        while (message := subscription.recv(wait)) is not None:
            data = getattr(message, "data", None)  # a Gap has none
            if data is not None:
                self.received.add(data)
            wait = 0


def errors(nodes: list[NodeProc]) -> Counter:
    """Bad input the nodes counted, by code, summed over the nodes."""
    total: Counter = Counter()
    for node in nodes:
        total.update(node.status()["errors"])
    return total


def answering(nodes: list[NodeProc], timeout: float) -> dict[str, float]:
    """Seconds until each node answered ``status`` again (it may still be working
    through what the fuzzer queued); a node that did not within ``timeout`` is left out."""
    started = time.monotonic()
    took = {}
    for node in nodes:
        with contextlib.suppress(AssertionError):
            wait_for(node.status, max(0.1, started + timeout - time.monotonic()), "status")
            took[node.node_id] = round(time.monotonic() - started, 2)
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description="Fuzz a 3-node zdps cluster on loopback.")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="keep the nodes' logs in this directory")
    parser.add_argument("--plain", action="store_true", help="nodes without CURVE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zdps-fuzz-") as workdir:
        cluster = Cluster(args.keep or Path(workdir))
        cluster.workdir.mkdir(parents=True, exist_ok=True)
        try:
            nodes, keys = start_cluster(cluster, curve=not args.plain)
            a, _, c = nodes
            legit = Legitimate(a, c)
            thread = threading.Thread(target=legit.run)
            thread.start()
            legit.ready.wait(30)
            figures = fuzz(nodes, keys, args.messages, args.seed)
            legit.stop.set()
            thread.join(30)
            alive = [n.node_id for n in nodes if n.proc.poll() is None]
            print(figures.line())
            took = answering(nodes, 300)
            print(f"nodes alive: {alive}; answering status again after (s): {took}")
            print(f"bad input counted: {dict(errors(nodes))}")
            print(
                f"legitimate: {len(legit.acked)} acked, {legit.failed} failed, "
                f"{len(legit.missing)} acked but not received; error: {legit.error!r}"
            )
            return 0 if len(alive) == 3 and not legit.missing and legit.error is None else 1
        finally:
            cluster.close()


if __name__ == "__main__":
    sys.exit(main())
