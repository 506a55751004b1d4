"""Local delivery: batches from the core out of the XPUB as three-frame messages (§9.1).

This is the one place where the data path works per message: a batch is unpacked
(C speed) and each message leaves as topic, header and payload. So the loop uses
pyzmq's backend ``send`` directly (with copy on and tracking off it costs half of
``zmq.Socket.send``), and frames that do not change within a batch are made once.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import zmq
from zmq.backend import Socket as _BackendSocket

from zdps.wire.batches import unpack_batch
from zdps.wire.delivery import EPOCH_KEY, SEQ_KEY, closed_header
from zdps.wire.errors import E_MALFORMED, ProtocolError

_send = _BackendSocket.send
_MORE = zmq.SNDMORE
_header = struct.Struct(">6sQ7sQ").pack  # message_header's layout, in one call


def deliver(pub: zmq.Socket, deliveries: list, bad_input: Callable[[str, str], None]) -> None:
    """Send ``deliveries`` (``Outbox.deliveries``) on ``pub``, in order.

    A batch that does not unpack (a peer's bug: the entry node checked it) is counted
    as bad input and skipped whole.
    """
    send = _send
    for topic, seq, epoch, n, batch in deliveries:
        topic_frame = topic.encode() + b"\x00"
        if batch is None:
            send(pub, topic_frame, _MORE, True, False)
            send(pub, closed_header(seq, epoch), _MORE, True, False)
            send(pub, b"", 0, True, False)
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
