"""A bare 4-hop pyzmq relay chain: the floor for zdps's three-node path.

publisher -> relay -> relay -> relay -> subscriber, each relay a Python process that
receives a frame and sends it on (PULL -> PUSH, one `recv` and one `send` per message,
no parsing): the same four hops and five processes as a publish from a client of node
A, through owner B, to a subscriber of node C, with nothing done at each hop. The
subscriber is `zmq_raw.sub` on the run's port; the relays are started by it (so they
end with it), each on a port of its own from `relay_ports`; the publisher is
`zmq_raw.pub`, dialling the first relay. The relays' CPU is reported as A, B and C:
the places of zdps's three nodes on the same path.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from typing import Any, NoReturn

import zmq

from . import zmq_raw

HOPS = 4  # publisher -> 3 relays -> subscriber


def _relay(pull_port: int, push_port: int, up: Any, work_us: float = 0) -> None:
    """Listen only once the next hop is connected, then say so (``up``): the chain is
    complete before the publisher starts, so no message waits for a reconnect (which
    would show as a tail that is not the chain's).

    With ``work_us`` (bench/turns) the relay works like a node: each turn takes every
    message waiting, spends ``work_us`` of CPU, then sends them all on."""
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.IMMEDIATE, 1)  # POLLOUT only once it is really connected
    push.connect(f"tcp://127.0.0.1:{push_port}")
    if not push.poll(30_000, zmq.POLLOUT):
        raise SystemExit(f"relay: nothing listens on {push_port}")
    pull = ctx.socket(zmq.PULL)
    pull.bind(f"tcp://127.0.0.1:{pull_port}")
    up.set()
    recv, send = pull.recv, push.send
    if work_us:
        _work_in_turns(recv, send, work_us / 1e6)
    else:
        while True:
            send(recv())


def _work_in_turns(recv: Any, send: Any, work: float) -> NoReturn:
    clock = time.perf_counter
    while True:
        turn = [recv()]
        with contextlib.suppress(zmq.Again):
            while True:
                turn.append(recv(zmq.NOBLOCK))
        until = clock() + work
        while clock() < until:  # the turn's work: CPU, as a node's decoding and routing
            pass
        for message in turn:
            send(message)


def sub(cfg: dict[str, Any]) -> None:
    ports = [*cfg["relay_ports"], cfg["port"]]
    assert len(ports) == HOPS, ports
    fork = multiprocessing.get_context("fork")
    ups = [fork.Event() for _ in range(HOPS - 1)]
    work = cfg.get("relay_work_us", 0)
    relays = [
        fork.Process(target=_relay, args=(ports[i], ports[i + 1], ups[i], work), daemon=True)
        for i in range(HOPS - 1)
    ]
    for relay in relays:
        relay.start()

    def chain_up() -> None:
        for up in reversed(ups):
            if not up.wait(30):
                raise SystemExit("relay chain did not come up")

    try:
        places = {name: relay.pid for name, relay in zip("ABC", relays, strict=True)}
        zmq_raw.sub(cfg, before_ready=chain_up, helpers=places)
    finally:
        for relay in relays:
            relay.terminate()


def pub(cfg: dict[str, Any]) -> None:
    zmq_raw.pub({**cfg, "port": cfg["relay_ports"][0]})
