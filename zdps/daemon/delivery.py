"""Local delivery: batches from the core out of the two PUB sockets (§9.1, §9.5).

The batch PUB gets each batch whole, three frames whatever its size. The raw PUB gets
each message as three frames, which is the one place where the data path works per
message: a batch is unpacked (C speed) and each message leaves as topic, header and
payload. So it is done only when a raw SUB subscribed to the topic
(``subscribers.py``), with pyzmq's backend ``send`` (with copy on and tracking off it
costs half of ``zmq.Socket.send``), and frames that do not change within a batch are
made once.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import zmq
from zmq.backend import Socket as _BackendSocket

from zdps.wire.batches import unpack_batch
from zdps.wire.delivery import EPOCH_KEY, SEQ_KEY, batch_header, closed_header
from zdps.wire.errors import E_MALFORMED, ProtocolError

_send = _BackendSocket.send
_MORE = zmq.SNDMORE
_header = struct.Struct(">6sQ7sQ").pack  # message_header's layout, in one call


def deliver(
    pub: zmq.Socket,
    batches: zmq.Socket,
    deliveries: list,
    raw_wants: Callable[[str], bool],
    bad_input: Callable[[str, str], None],
) -> None:
    """Send ``deliveries`` (``Outbox.deliveries``) in order: every batch whole on
    ``batches``, and message by message on ``pub`` when ``raw_wants`` its topic.

    A batch that does not unpack (a peer's bug: the entry node checked it) is counted
    as bad input and not sent on ``pub``.
    """
    send = _send
    for topic, seq, epoch, n, batch in deliveries:
        topic_frame = topic.encode() + b"\x00"
        if batch is None:  # the final message of a deleted topic
            header = closed_header(seq, epoch)
            for sock in (pub, batches):
                send(sock, topic_frame, _MORE, True, False)
                send(sock, header, _MORE, True, False)
                send(sock, b"", 0, True, False)
            continue
        send(batches, topic_frame, _MORE, True, False)
        send(batches, batch_header(seq, epoch, n), _MORE, True, False)
        send(batches, batch, 0, True, False)
        if not raw_wants(topic):
            continue
        try:
            payloads = unpack_batch(batch, n)
        except ProtocolError as exc:
            bad_input(E_MALFORMED, f"a batch of {topic!r} to deliver: {exc.message}")
            continue
        for payload in payloads:
            send(pub, topic_frame, _MORE, True, False)
            send(pub, _header(SEQ_KEY, seq, EPOCH_KEY, epoch), _MORE, True, False)
            send(pub, payload, 0, True, False)
            seq += 1
