"""What a node sends its clients on the API socket: replies, and queue groups' shares.

No send waits (ROUTER_MANDATORY, NOBLOCK). A reply to a client with API_HWM frames
unread is dropped and counted (``client_backlog``); one to a client whose connection
is gone ends what the node keeps for it (``NodeCore.client_gone``). A queue group's
share that its member cannot take goes to another member on this node, or is lost and
counted (``zdps/core/queues.py``, docs/PROTOCOL.md §8.5); a durable consumer's that no
member here can take goes again after its ack_wait (§8.6).
"""

from __future__ import annotations

import zmq

from zdps.core.node import NodeCore
from zdps.core.outbox import Outbox
from zdps.wire import encode_api

API_HWM = 100_000  # frames queued per client; a client that stops reading loses the rest
E_CLIENT_BACKLOG = "client_backlog"  # counts replies dropped for a client that stopped reading


class ApiOutput:
    """The node's sends on its API ROUTER."""

    def __init__(self, api: zmq.Socket, core: NodeCore) -> None:
        self.api = api
        self.core = core

    def send(self, out: Outbox) -> None:
        core, api = self.core, self.api
        for client, frames in out.clients.items():
            for frame in frames:
                try:
                    api.send_multipart([client, encode_api(*frame)], zmq.NOBLOCK)
                except zmq.Again:
                    core.bad_input(E_CLIENT_BACKLOG, f"{API_HWM} replies unread; dropped")
                except zmq.ZMQError:  # EHOSTUNREACH: the client is gone
                    core.client_gone(client)
                    break
        for member, key, frame, lost in out.pushes:
            self._push(member, key, frame, lost)

    def _push(self, member: bytes | None, key: bytes, frame: list, lost: int) -> None:
        """A share to ``member``, or to the next member that can take it."""
        data, tried = encode_api(*frame), set()
        while member is not None:
            try:
                self.api.send_multipart([member, data], zmq.NOBLOCK)
                return
            except zmq.Again:  # its queue is full: another member takes the share
                pass
            except zmq.ZMQError:  # EHOSTUNREACH: gone, and a member of nothing now
                self.core.client_gone(member)
            tried.add(member)
            member = self.core.queues.next_member(key, tried, lost)
