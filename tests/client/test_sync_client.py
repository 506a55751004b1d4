"""``Client`` against a scripted fake node: sends, windows, deadlines, watches, leaks."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import zmq

from tests.client.fake_node import (
    FakeNode,
    answer,
    free_port,
    garbage,
    on_publish,
    pub_entries,
    pub_messages,
    wait_until,
)
from zdps import FLUSH, Client, PublishError, PublishResult, RequestError
from zdps.client.protocol import DEFAULT_RCVHWM, reachable_pub

pytestmark = pytest.mark.timeout(30)


def dead_endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def counted(n: int, consumed: list[int], topic: str = "t") -> Iterator[tuple[str, bytes]]:
    for i in range(n):
        consumed.append(i)
        yield topic, b"m%d" % i


class Outstanding:
    """Publishes the fake node holds unacknowledged, and the most it ever held."""

    def __init__(self) -> None:
        self.refs: list[int] = []
        self.most = 0

    def add(self, msg: list) -> None:
        """The publishes of a ``pub`` frame, each message of a batch with its own ref."""
        self.refs += [ref for ref, _topic, _payload in pub_messages(msg)]
        self.most = max(self.most, len(self.refs))

    def ack_all(self, node: FakeNode, client: bytes) -> None:
        refs, self.refs = self.refs, []
        node.send(client, "ack", [[ref, ref * 10, 1, 0, 1] for ref in refs])


# ---------------------------------------------------------------------- sending


def test_sends_to_a_dead_node_time_out_instead_of_blocking() -> None:
    with Client(dead_endpoint(), timeout=0.3) as client:
        began = time.monotonic()
        with pytest.raises(RequestError) as raised:
            for _ in range(5000):  # more than the DEALER queues (SNDHWM 1000)
                client.publish("t", b"x", ack=False)
        assert raised.value.code == "timeout"
        began = time.monotonic()
        for call in (client.status, lambda: client.publish("t", b"x"), client.info):
            with pytest.raises(RequestError):
                call()
        with pytest.raises(RequestError):
            next(client.watch("t"))
        assert time.monotonic() - began < 3


@pytest.mark.parametrize("ack", [True, False])
def test_publish_many_to_a_dead_node_reports_timeouts_and_stops(ack: bool) -> None:
    consumed: list[int] = []
    with Client(dead_endpoint(), timeout=0.5) as client:
        began = time.monotonic()
        outcomes = list(client.publish_many(counted(1500, consumed), ack=ack))
        assert time.monotonic() - began < 3
    assert outcomes and all(isinstance(o, PublishError) for o in outcomes)
    assert {o.code for o in outcomes} == {"timeout"}
    assert len(consumed) < 1500  # stopped reading once the node proved unreachable
    if ack:
        assert len(outcomes) == len(consumed)  # every message read has an outcome


def test_publish_stream_to_a_dead_node_stops_within_the_timeout() -> None:
    consumed: list[int] = []
    with Client(dead_endpoint(), timeout=0.5) as client:
        began = time.monotonic()
        result = client.publish_stream(counted(100_000, consumed), window=2000, batch=100)
        assert time.monotonic() - began < 3
    assert result.acked == 0 and result.done == len(consumed) < 100_000
    assert {f.code for f in result.failures} == {"timeout"}


# ---------------------------------------------------------------------- publish_many


def test_publish_many_never_exceeds_its_window(node: FakeNode) -> None:
    """A frame that settles nothing (an event) must not open the window."""
    window = 4
    held = Outstanding()

    @on_publish
    def handler(node: FakeNode, client: bytes, msg: list) -> None:
        held.add(msg)
        if len(held.refs) >= window:
            node.send(client, "event", 999, {"nodes": {}})  # settles nothing
            node.later(0.1, lambda: held.ack_all(node, client))

    node.handler = handler
    with Client(node.endpoint, timeout=5) as client:
        outcomes = list(client.publish_many((("t", b"x") for _ in range(12)), window=window))
        assert held.most == window
        assert all(isinstance(o, PublishResult) for o in outcomes) and len(outcomes) == 12


@pytest.mark.parametrize("batch", [1, 3])
def test_publish_many_batches_count_against_the_window(node: FakeNode, batch: int) -> None:
    held = Outstanding()

    @on_publish
    def handler(node: FakeNode, client: bytes, msg: list) -> None:
        held.add(msg)
        node.later(0.02, lambda: held.ack_all(node, client))

    node.handler = handler
    with Client(node.endpoint, timeout=5) as client:
        messages = (("t", b"x") for _ in range(20))
        outcomes = list(client.publish_many(messages, window=5, batch=batch))
    assert len(outcomes) == 20 and held.most <= 5


def test_publish_many_waits_for_late_acks_until_the_deadline(node: FakeNode) -> None:
    held = Outstanding()

    @on_publish
    def handler(node: FakeNode, client: bytes, msg: list) -> None:
        held.add(msg)
        if len(held.refs) == 5:
            node.send(client, "event", 999, {"nodes": {}})
            node.send(client, "rep", 12345, True, None)  # a late reply nobody waits for
            node.later(0.3, lambda: held.ack_all(node, client))

    node.handler = handler
    with Client(node.endpoint, timeout=3) as client:
        outcomes = list(client.publish_many(("t", b"x") for _ in range(5)))
        assert [o.seq for o in outcomes] == [10, 20, 30, 40, 50]
        assert client._session.awaited == {}


def test_publish_many_yields_outcomes_in_acknowledgement_order(node: FakeNode) -> None:
    held = Outstanding()

    @on_publish
    def handler(node: FakeNode, client: bytes, msg: list) -> None:
        held.add(msg)
        if len(held.refs) == 4:
            first, second, third, fourth = held.refs
            for ref in (third, first, fourth):
                node.send(client, "ack", [[ref, ref * 10, 1, 0, 1]])
            node.send(client, "nack", [[second, "too_large", "no", 1]])

    node.handler = handler
    with Client(node.endpoint, timeout=3) as client:
        outcomes = list(client.publish_many(("t", b"x") for _ in range(4)))
    assert [getattr(o, "seq", None) for o in outcomes] == [30, 10, 40, None]
    assert isinstance(outcomes[3], PublishError) and outcomes[3].code == "too_large"


def test_publish_many_times_out_only_what_is_unacknowledged(node: FakeNode) -> None:
    late: list[int] = []

    def ack_late(client: bytes, ref: int) -> None:
        node.send(client, "ack", [[ref, 1, 1, 0, 1]])
        late.append(ref)

    @on_publish
    def handler(node: FakeNode, client: bytes, msg: list) -> None:
        for ref, _topic, payload in pub_messages(msg):
            if payload == b"lost":  # acked only long after the client's deadline
                node.later(0.8, lambda ref=ref: ack_late(client, ref))
            else:
                node.send(client, "ack", [[ref, ref, 1, 0, 1]])

    node.handler = handler
    payloads = [b"a", b"lost", b"b", b"c"]
    with Client(node.endpoint, timeout=0.4) as client:
        outcomes = list(client.publish_many(("t", p) for p in payloads))
        assert [type(o) for o in outcomes] == [PublishResult] * 3 + [PublishError]
        assert outcomes[3].code == "timeout" and "#2" in outcomes[3].message
        wait_until(lambda: late, 5, "the late ack")
        # The late ack reaches the client before this reply (one connection, in order).
        assert client.request("echo") == {"op": "echo", "args": {}}
        assert client._session.awaited == {}  # the late ack dropped


def test_closing_publish_many_early_forgets_its_refs(node: FakeNode) -> None:
    with Client(node.endpoint, timeout=3) as client:
        outcomes = client.publish_many(("t", b"x") for _ in range(10))
        next(outcomes)
        outcomes.close()
        assert client._session.awaited == {}


# ---------------------------------------------------------------------- publish_stream


def test_publish_stream_window_late_acks_and_nacks(node: FakeNode) -> None:
    window = 7
    held = Outstanding()

    @on_publish
    def handler(node: FakeNode, client: bytes, msg: list) -> None:
        held.add(msg)
        if len(held.refs) >= window:
            node.send(client, "event", 999, {"nodes": {}})

            def settle() -> None:
                refs, held.refs = held.refs, []
                # one run for all but the last, which is nacked
                node.send(client, "ack", [[refs[0], 1, 1, 0, len(refs) - 1]])
                node.send(client, "nack", [[refs[-1], "too_large", "no", 1]])

            node.later(0.1, settle)
        elif pub_messages(msg)[-1][2] == b"last":
            node.later(0.1, lambda: held.ack_all(node, client))

    node.handler = handler
    messages = [("t", b"x")] * 20 + [("t", b"last")]
    with Client(node.endpoint, timeout=5) as client:
        result = client.publish_stream(iter(messages), window=window, batch=3)
    assert held.most <= window
    assert result.done == 21
    assert [f.code for f in result.failures] == ["too_large"] * len(result.failures)
    assert result.acked == 21 - len(result.failures) and 1 <= len(result.failures) <= 3


def test_publish_stream_drops_acks_that_come_after_the_deadline(node: FakeNode) -> None:
    late: list[list] = []

    def ack_late(client: bytes, run: list) -> None:
        node.send(client, "ack", run)
        late.append(run)

    @on_publish
    def handler(node: FakeNode, client: bytes, msg: list) -> None:
        sent = pub_messages(msg)
        run = [[sent[0][0], 1, 1, 0, len(sent)]]
        if sent[0][2] == b"slow":
            node.later(0.6, lambda: ack_late(client, run))
        else:
            node.send(client, "ack", run)

    node.handler = handler
    messages = [("t", b"slow")] * 4 + [("t", b"fast")] * 8
    with Client(node.endpoint, timeout=0.3) as client:
        result = client.publish_stream(iter(messages), batch=4)
        assert (result.acked, len(result.failures)) == (8, 4)
        assert {f.code for f in result.failures} == {"timeout"}
        wait_until(lambda: late, 5, "the late ack")
        assert client.request("echo")["op"] == "echo"  # read after the late ack
        assert client._session.awaited == {}


def published(node: FakeNode) -> list[list[tuple[int, str, list[bytes]]]]:
    """``(ref, topic, payloads)`` of each entry of each ``pub`` frame the node got."""
    return [
        [(e.ref, e.topic, e.payloads) for e in pub_entries(f)]
        for f in node.received
        if f[1] == "pub"
    ]


@pytest.mark.parametrize("how", ["many", "stream"])
def test_a_run_of_a_topic_travels_as_one_batch_until_a_flush(node: FakeNode, how: str) -> None:
    items = [("t", b"a"), ("t", "b"), ("u", b"c"), FLUSH, ("u", b"d"), ("u", b"e"), ("t", b"f")]
    with Client(node.endpoint, timeout=5) as client:
        if how == "many":
            outcomes = list(client.publish_many(iter(items), batch=100))
            assert [type(o) for o in outcomes] == [PublishResult] * 6
            assert [o.seq for o in outcomes] == [1, 2, 3, 4, 5, 6]  # one run per batch
        else:
            result = client.publish_stream(iter(items), batch=100)
            assert (result.acked, result.failures) == (6, [])
    frames = published(node)
    first = frames[0][0][0]
    assert frames == [
        [(first, "t", [b"a", b"b"]), (first + 2, "u", [b"c"])],
        [(first + 3, "u", [b"d", b"e"]), (first + 5, "t", [b"f"])],
    ]


def test_a_nack_run_fails_exactly_its_refs(node: FakeNode) -> None:
    @on_publish
    def handler(node: FakeNode, client: bytes, msg: list) -> None:
        for entry in pub_entries(msg):
            n = len(entry.payloads)
            if entry.topic == "bad":
                node.send(client, "nack", [[entry.ref, "invalid_topic", "no", n]])
            else:
                node.send(client, "ack", [[entry.ref, entry.ref, 1, 0, n]])

    node.handler = handler
    items = [("ok", b"1"), ("ok", b"2"), ("bad", b"3"), ("bad", b"4"), ("bad", b"5"), ("ok", b"6")]
    with Client(node.endpoint, timeout=5) as client:
        outcomes = list(client.publish_many(iter(items), batch=10))
        result = client.publish_stream(iter(items), batch=10)
    assert [getattr(o, "code", None) for o in outcomes] == [None] * 2 + ["invalid_topic"] * 3 + [
        None
    ]
    assert (result.acked, [f.code for f in result.failures]) == (3, ["invalid_topic"] * 3)


# ---------------------------------------------------------------------- requests


def test_request_passes_an_argument_named_timeout(node: FakeNode) -> None:
    with Client(node.endpoint, timeout=3) as client:
        assert client.request("echo", timeout=5, op=1) == {
            "op": "echo",
            "args": {"timeout": 5, "op": 1},
        }


def test_timed_out_requests_leave_nothing_behind(node: FakeNode) -> None:
    late: list[list] = []

    def answer_late(client: bytes, msg: list) -> None:
        answer(node, client, msg)
        late.append(msg)

    def handler(node: FakeNode, client: bytes, msg: list) -> None:
        if msg[3] == "slow":
            node.later(0.3, lambda: answer_late(client, msg))
        else:
            answer(node, client, msg)

    node.handler = handler
    with Client(node.endpoint, timeout=3) as client:
        began = time.monotonic()
        with pytest.raises(RequestError):
            client.request("slow", _timeout=0.1)
        assert time.monotonic() - began < 1
        wait_until(lambda: late, 5, "the late reply")
        assert client.request("echo")["op"] == "echo"  # read after the late reply
        assert client._session.awaited == {}


def test_bad_frames_from_the_node_are_skipped(node: FakeNode) -> None:
    def handler(node: FakeNode, client: bytes, msg: list) -> None:
        for frame in garbage():
            node.send_raw(client, frame)
        answer(node, client, msg)

    node.handler = handler
    with Client(node.endpoint, timeout=3) as client:
        assert client.request("echo")["op"] == "echo"
        assert client.bad_frames == 2


def test_an_endpoint_zeromq_refuses_raises_valueerror() -> None:
    for endpoint in ("garbage", "tcp://*:7711", "tcp://127.0.0.1:*"):
        with pytest.raises(ValueError):
            Client(endpoint)


# ---------------------------------------------------------------------- watches


def test_closing_a_watch_sends_unwatch(node: FakeNode) -> None:
    with Client(node.endpoint, timeout=3) as client:
        watch = client.watch("t")
        assert next(watch)["owner"] == "fake"
        watch_ref = node.requests("watch")[0][2]
        watch.close()
        unwatch = wait_until(lambda: node.requests("unwatch"), 5, "unwatch")
        assert unwatch[0][4] == {"ref": watch_ref}
        assert client.request("echo")["op"] == "echo"  # its reply was dropped
        assert client._session.awaited == {}


def test_closing_the_client_ends_its_watches(node: FakeNode) -> None:
    client = Client(node.endpoint, timeout=3)
    watch = client.watch("t")
    next(watch)
    client.close()
    unwatch = wait_until(lambda: node.requests("unwatch"), 5, "unwatch")
    assert unwatch[0][4] == {"ref": node.requests("watch")[0][2]}
    watch.close()  # nothing more to send, and no error
    assert len(node.requests("unwatch")) == 1


# ---------------------------------------------------------------------- subscribing


class RecordingContext(zmq.Context):
    made: list[zmq.Socket]

    def __init__(self) -> None:
        super().__init__()
        self.made = []

    def socket(self, *args, **kwargs):  # type: ignore[override]
        sock = super().socket(*args, **kwargs)
        self.made.append(sock)
        return sock


@pytest.mark.parametrize("failure", ["info", "connect", "ready"])
def test_subscribe_closes_its_sub_socket_when_it_fails(node: FakeNode, failure: str) -> None:
    def handler(node: FakeNode, client: bytes, msg: list) -> None:
        if msg[3] == failure:
            node.send(client, "rep", msg[2], False, {"code": "timeout", "message": "no"})
        elif msg[3] == "info" and failure == "connect":
            node.send(client, "rep", msg[2], True, {"endpoints": {"pub": "garbage"}})
        else:
            answer(node, client, msg)

    node.handler = handler
    ctx = RecordingContext()
    try:
        with Client(node.endpoint, timeout=3, context=ctx) as client:
            with pytest.raises((RequestError, zmq.ZMQError)):
                client.subscribe("t")
            subs = [s for s in ctx.made if s.type == zmq.SUB]
            assert len(subs) == 1 and subs[0].closed
    finally:
        ctx.destroy(linger=0)


def test_subscriber_queue_is_bounded(node: FakeNode) -> None:
    with Client(node.endpoint, timeout=3) as client:
        with client.subscribe("t") as subscription:
            assert subscription._sock.getsockopt(zmq.RCVHWM) == DEFAULT_RCVHWM == 1_000_000
        with client.subscribe("t", rcvhwm=10) as subscription:
            assert subscription._sock.getsockopt(zmq.RCVHWM) == 10


def test_a_loopback_pub_endpoint_is_reached_through_the_api_host() -> None:
    assert reachable_pub("tcp://127.0.0.1:7712", "tcp://10.1.2.3:7711") == "tcp://10.1.2.3:7712"
    assert reachable_pub("tcp://localhost:7712", "tcp://db1:7711") == "tcp://db1:7712"
    assert reachable_pub("tcp://[::1]:7712", "tcp://[fe80::1]:7711") == "tcp://[fe80::1]:7712"
    unchanged = [
        ("tcp://127.0.0.1:7712", "tcp://127.0.0.1:7711"),
        ("tcp://127.0.0.1:7712", "tcp://localhost:7711"),
        ("tcp://10.0.0.5:7712", "tcp://10.1.2.3:7711"),
        ("tcp://127.0.0.1:7712", "ipc:///tmp/api"),
        ("ipc:///tmp/pub", "tcp://10.1.2.3:7711"),
        ("tcp://127.0.0.1:7712", "tcp://0.0.0.0:7711"),
    ]
    for pub, api in unchanged:
        assert reachable_pub(pub, api) == pub
