"""pyre (zeromq-pyre, the Python ZRE/Zyre): node A SHOUTs to a group that node B joined.

pyre discovers peers with UDP beacons, and on its own it picks the first non-loopback
interface and broadcasts there. The benchmark sends nothing off loopback, so the beacon
is pinned to 127.0.0.1 with broadcast address 127.255.255.255 (delivered on `lo`), on a
beacon port picked per run; peers then connect to each other at tcp://127.0.0.1:PORT.
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any

import zmq

from .common import Receiving, deadlines, now_ns, padding, ready, report, stamp, tight_timers


def _loopback_beacon() -> None:
    from pyre import zbeacon

    def prepare_socket(self: Any) -> None:
        self.address = "127.0.0.1"
        self.network_address = ipaddress.IPv4Address("127.0.0.0")
        self.broadcast_address = ipaddress.IPv4Address("127.255.255.255")
        self.interface_name = "lo"

    zbeacon.ZBeacon._prepare_socket = prepare_socket


def _node(cfg: dict[str, Any], name: str) -> Any:
    _loopback_beacon()
    from pyre import Pyre

    node = Pyre(name)
    node.set_port(str(cfg["beacon_port"]).encode())
    node.start()
    return node


def _events(node: Any, timeout_ms: int) -> list[list[bytes]]:
    """All frames waiting on the node's inbox, waiting up to timeout_ms for the first."""
    sock = node.socket()
    out = []
    if sock.poll(timeout_ms):
        while True:
            try:
                out.append(sock.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                break
    return out


def sub(cfg: dict[str, Any]) -> None:
    node = _node(cfg, "bench-sub")
    node.join(cfg["group"])
    rx = Receiving(cfg, cfg["count"])
    ready(endpoint=node.endpoint() if hasattr(node, "endpoint") else None)
    sock = node.socket()
    recv = sock.recv_multipart
    add, every = rx.samples.add, rx.samples.every
    received = first = last = 0
    expected = rx.expected
    sock.setsockopt(zmq.RCVTIMEO, 200)
    while received < expected:
        try:
            frames = recv()
        except zmq.Again:
            rx.received, rx.last_ns = received, last
            if rx.expired():
                break
            continue
        if frames[0] != b"SHOUT":  # ENTER, JOIN, EXIT...
            continue
        last = now_ns()
        if not first:
            first = last
        received += 1
        if not received % every:
            add(frames[4], last)
    rx.received, rx.first_ns, rx.last_ns = received, first, last
    rx.finish(cfg)
    node.stop()


def pub(cfg: dict[str, Any]) -> None:
    tight_timers()
    node = _node(cfg, "bench-pub")
    group = cfg["group"]
    # Wait (bounded) until the subscriber's node has been discovered and has joined.
    joined = False
    deadline = now_ns() + 30_000_000_000
    while not joined and now_ns() < deadline:
        for frames in _events(node, 200):
            if frames[0] == b"JOIN" and frames[3].decode() == group:
                joined = True
    if not joined:
        report({"published": 0, "start_ns": now_ns(), "end_ns": now_ns(), "error": "no JOIN"})
        node.stop()
        return
    ready()
    pad = padding(cfg["size"])
    shout = node.shout
    published = 0
    start = now_ns()
    for _ in deadlines(cfg["count"], cfg.get("rate")):
        shout(group, stamp(pad))
        published += 1
    end = now_ns()
    report({"published": published, "start_ns": start, "end_ns": end})
    # Stay up while the node's peer sockets drain: the runner ends this process once
    # the subscriber has reported (stopping the node now could drop queued messages).
    time.sleep(cfg["timeout_s"])
    node.stop()
