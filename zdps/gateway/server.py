"""The gateway's IO: WebSockets (``websockets``) on one side, a zdps node on the other.

Each WebSocket gets a ``PhoenixSocket`` (phoenix.py), which decides; this module only
carries out what it asks. Every topic that some socket joined has one zdps
subscription in this process (``Feed``), however many sockets joined it: its
messages are pushed to each of them with that socket's own join_ref.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http
import json
import logging
import signal
import time
import weakref
from collections import Counter
from collections.abc import Coroutine
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from zdps.client.aio import AsyncClient
from zdps.client.aio_subscription import AsyncSubscription
from zdps.client.protocol import E_UNREACHABLE, Message, ZdpsError
from zdps.client.recovery import Gap
from zdps.daemon.notify import SystemdNotifier
from zdps.gateway import phoenix
from zdps.gateway.fanout import Channel, Feed, wire_frame
from zdps.gateway.limits import Limits
from zdps.gateway.node_watch import NodeWatch
from zdps.gateway.payloads import as_event, push_of
from zdps.gateway.recovery import Entry, Recovery
from zdps.gateway.tokens import phoenix_if_offered, reread, token_of

log = logging.getLogger("zdps.gateway")

VSN = "2.0.0"
MAX_FRAME = 1024 * 1024  # bytes of one incoming frame


class Gateway:
    def __init__(
        self, node: str, path: str = "/socket/websocket", limits: Limits | None = None,
        timeout: float = 10.0,
    ) -> None:  # fmt: skip
        self.node, self.path, self.timeout = node, path, timeout
        self.limits = limits or Limits()
        self.client: AsyncClient | None = None
        self.watch: NodeWatch | None = None
        self.sockets: dict[ServerConnection, phoenix.PhoenixSocket] = {}  # connected now
        # (client, token), until the socket opens (or a failed handshake drops the connection)
        self._users: weakref.WeakKeyDictionary[ServerConnection, tuple[str, str]] = (
            weakref.WeakKeyDictionary()
        )
        self.feeds: dict[str, Feed] = {}
        self.counters: Counter[str] = Counter()
        self._tasks: set[asyncio.Task] = set()  # publishes waiting for their acks

    # ------------------------------------------------------------------ the socket

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Only the socket path with ``vsn=2.0.0``: anything else is refused (403 as Phoenix)."""
        url = urlsplit(request.path)
        if url.path == "/status":
            response = connection.respond(http.HTTPStatus.OK, json.dumps(self.status()) + "\n")
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = "application/json"
            return response
        if url.path != self.path:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "no socket here\n")
        if len(self.sockets) >= self.limits.max_connections:
            self.counters["refused_max_connections"] += 1
            return connection.respond(
                http.HTTPStatus.SERVICE_UNAVAILABLE, "too many connections: try another gateway\n"
            )
        vsn = parse_qs(url.query).get("vsn", [""])[0]
        if vsn != VSN:
            self.counters["refused_version"] += 1
            return connection.respond(
                http.HTTPStatus.FORBIDDEN, f"this gateway speaks Phoenix V2: vsn={VSN}\n"
            )
        tokens = self.limits.tokens
        if tokens is not None:
            offered = request.headers.get_all("Sec-WebSocket-Protocol")
            protocols = [p.strip() for value in offered for p in value.split(",")]
            token = token_of(request.path, protocols)
            user = tokens.who(token)
            if user is None or token is None:
                self.counters["refused_token"] += 1
                return connection.respond(http.HTTPStatus.FORBIDDEN, "a known token is needed\n")
            self._users[connection] = (user, token)
        return None

    async def handle(self, ws: ServerConnection) -> None:
        """One WebSocket, until it closes or stays silent ``idle_timeout`` seconds."""
        tokens = self.limits.tokens
        user, token = self._users.pop(ws, (None, None))
        sock = phoenix.PhoenixSocket(
            permissions=None if tokens is None else tokens.permissions, user=user, token=token
        )
        self.counters["connections"] += 1
        self.sockets[ws] = sock
        try:
            while True:
                try:
                    text = await asyncio.wait_for(ws.recv(), self.limits.idle_timeout)
                except TimeoutError:
                    self.counters["idle_closed"] += 1
                    await ws.close(1000, "idle")
                    return
                if not isinstance(text, str):
                    self.counters["bad_frames"] += 1
                    await ws.close(1003, "binary frames are not taken from clients")
                    return
                self.counters["frames_in"] += 1
                try:
                    actions = sock.on_text(text)
                except phoenix.BadFrame as exc:
                    self.counters["bad_frames"] += 1
                    await ws.close(1007, str(exc)[:120])
                    return
                for action in actions:
                    await self._carry_out(ws, sock, action)
        except ConnectionClosed:
            pass
        finally:
            self.sockets.pop(ws, None)
            self._forget(ws, sock)

    async def _carry_out(
        self, ws: ServerConnection, sock: phoenix.PhoenixSocket, action: phoenix.Action
    ) -> None:
        if isinstance(action, str):
            await ws.send(action)
        elif isinstance(action, phoenix.Join):
            recovery = None if action.since is None else Recovery(action.topic, action.since)
            if self._unreachable():
                feed, why = None, E_UNREACHABLE
            else:
                feed, why = await self._join(action.topic, ws, sock, recovery)
            if why is None:
                assert feed is not None
                await ws.send(phoenix.reply(action.join_ref, action.ref, action.topic, True, {}))
                if recovery is not None:
                    await self._recover(ws, action.join_ref, action.topic, feed, recovery)
            else:  # a refused rejoin has lost its old channel too: out of the feed
                sock.drop(action.topic)
                self._leave(action.topic, ws)
                await ws.send(phoenix.error_reply(action.join_ref, action.ref, action.topic, why))
        elif isinstance(action, phoenix.Leave):
            self._leave(action.topic, ws)
        else:
            self._spawn(self._publish(ws, action))  # replies in its own time

    async def _publish(self, ws: ServerConnection, action: phoenix.Publish) -> None:
        assert self.client is not None
        try:
            if self._unreachable():
                raise ZdpsError(E_UNREACHABLE, "the node does not answer")
            result = await self.client.publish(action.topic, action.data)
        except ZdpsError as exc:
            frame = phoenix.error_reply(action.join_ref, action.ref, action.topic, exc.code)
        else:
            seq = None if result is None else result.seq
            frame = phoenix.reply(action.join_ref, action.ref, action.topic, True, {"seq": seq})
        self.counters["published"] += 1
        with contextlib.suppress(ConnectionClosed):
            await ws.send(frame)

    # ------------------------------------------------------------------ the feeds

    async def _join(
        self, topic: str, ws: ServerConnection, sock: phoenix.PhoenixSocket,
        recovery: Recovery | None,
    ) -> tuple[Feed, str | None]:  # fmt: skip
        """Add ``ws`` to the topic's feed, subscribing first if it is new (and to its
        recovering sockets, whose live messages wait); why not, if not."""
        feed = self.feeds.get(topic)
        if feed is None:
            feed = self.feeds[topic] = Feed()
            feed.task = asyncio.create_task(self._run_feed(topic, feed))
        channel = sock.channel(topic)
        assert channel is not None, "a Join comes after its channel is made"
        feed.add(ws, sock, channel, recovery)
        await feed.ready.wait()
        return feed, feed.error

    async def _recover(
        self, ws: ServerConnection, join_ref: str, topic: str, feed: Feed, recovery: Recovery
    ) -> None:
        """History after the socket's position, then what arrived meanwhile; then live."""
        assert self.client is not None
        after = recovery.last
        try:
            while True:
                page = await self.client.history(topic, after=list(after))
                entries = [(e[0], e[1], e[2]) for e in page["entries"]]
                self._send(ws, join_ref, topic, recovery.take(entries))
                if not entries or not page.get("more"):
                    break
                after = entries[-1][:2]
        except ZdpsError as exc:
            epoch, seq = recovery.last
            broadcast([ws], phoenix.gap(join_ref, topic, epoch, seq + 1, None, exc.code))
        finally:  # no await from here: no live message slips between
            self._send(ws, join_ref, topic, recovery.finish())
            feed.caught_up(ws, recovery)
            self.counters["recoveries"] += 1

    def _send(
        self, ws: ServerConnection, join_ref: str, topic: str, items: list[Entry | Gap]
    ) -> None:
        for item in items:
            if isinstance(item, Gap):
                frame: Any = phoenix.gap(join_ref, topic, item.epoch, item.first, item.last)
            else:
                frame = push_of(join_ref, True, topic, as_event(item[2]), item[:2])
            if frame is not None:
                broadcast([ws], frame)

    def _unreachable(self) -> bool:
        """The node is known not to answer: a join or publish is refused now (counted),
        not after its timeout."""
        if self.watch is None or self.watch.answers is not False:
            return False
        self.counters["refused_node_unreachable"] += 1
        return True

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` on its own, kept referenced until it is done."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _forget(self, ws: ServerConnection, sock: phoenix.PhoenixSocket) -> None:
        """``ws`` is gone, or gets nothing more: out of every feed it joined."""
        for topic in list(sock.channels):
            self._leave(topic, ws)

    def _leave(self, topic: str, ws: ServerConnection) -> None:
        feed = self.feeds.get(topic)
        if feed is None:
            return
        feed.remove(ws)
        if not feed.sockets and feed.task is not None:
            feed.task.cancel()
            del self.feeds[topic]

    async def _run_feed(self, topic: str, feed: Feed) -> None:
        assert self.client is not None
        try:
            subscription = await self.client.subscribe(topic)
        except ZdpsError as exc:
            feed.error = exc.code
            feed.ready.set()
            self.feeds.pop(topic, None)
            return
        feed.ready.set()
        try:
            await self._pump(topic, feed, subscription)
        finally:
            subscription.close()

    async def _pump(self, topic: str, feed: Feed, subscription: AsyncSubscription) -> None:
        async for delivery in subscription:
            if isinstance(delivery, Gap):
                self._gap(topic, feed, delivery)
            elif delivery.type == "message":
                self.counters["messages_in"] += 1
                self._push(topic, feed, delivery)
        for ws, sock in list(feed.sockets.items()):  # the topic was deleted
            join_ref = sock.drop(topic)
            if join_ref is not None:
                broadcast([ws], phoenix.close(join_ref, topic))
        self.feeds.pop(topic, None)

    def _push(self, topic: str, feed: Feed, message: Message) -> None:
        """One message to every live socket of the feed (fanout.py); a recovering one
        keeps it for later."""
        entry = (message.epoch, message.seq, message.data)
        for recovery in feed.catching.values():
            recovery.buffered.append(entry)
        position, event = entry[:2], as_event(message.data)

        def frame_for(channel: Channel) -> bytes | None:
            frame = push_of(channel[0], channel[1], topic, event, position)
            return None if frame is None else wire_frame(frame)

        pushed, slow = feed.push(frame_for, self.limits.max_send_buffer)
        self.counters["pushes"] += pushed
        for ws in slow:
            self._drop_slow(ws, feed.sockets[ws])

    def _gap(self, topic: str, feed: Feed, gap: Gap) -> None:
        """Messages the feed lost for good (zdps recovery could not fetch them): told to
        the positioned channels, as a recovering socket is told of its own gaps."""
        self.counters["gaps"] += 1
        for (join_ref, positioned), group in feed.groups.items():
            if positioned:
                broadcast(group, phoenix.gap(join_ref, topic, gap.epoch, gap.first, gap.last))

    def _drop_slow(self, ws: ServerConnection, sock: phoenix.PhoenixSocket) -> None:
        """A client that does not read: it gets no more, and is closed (1013, counted)."""
        self._forget(ws, sock)
        self.counters["slow_clients_dropped"] += 1
        self._spawn(ws.close(1013, "too slow: messages were not read"))

    def reload_tokens(self) -> None:
        """SIGHUP: the tokens file read again (tokens.py, ``reread``); the sockets whose
        token is gone are closed (1008) and counted as ``revoked``."""
        if self.limits.tokens is None:
            log.info("SIGHUP: no tokens file to read again")
            return
        try:
            tokens, revoked = reread(self.limits.tokens, self.sockets)
        except ValueError as exc:
            log.error("SIGHUP: the tokens file is kept as it was: %s", exc)
            return
        self.limits = dataclasses.replace(self.limits, tokens=tokens)
        for ws in revoked:
            self._forget(ws, self.sockets[ws])
            self._spawn(ws.close(1008, "token revoked"))
        self.counters["revoked"] += len(revoked)
        log.info("SIGHUP: %d token(s) read; %d socket(s) closed, their token gone",
                 len(tokens.names), len(revoked))  # fmt: skip

    def status(self) -> dict[str, Any]:
        """What ``GET /status`` answers."""
        return {
            "node": self.node,
            "node_answers": None if self.watch is None else self.watch.answers,
            "connections": len(self.sockets),
            "topics": len(self.feeds),
            "channels": self.channels,
            "counters": dict(sorted(self.counters.items())),
            "limits": {
                "max_connections": self.limits.max_connections,
                "max_send_buffer": self.limits.max_send_buffer,
                "idle_timeout": self.limits.idle_timeout,
                "origins": list(self.limits.origins),
                "tokens": None if self.limits.tokens is None else len(self.limits.tokens.names),
            },
        }

    # ------------------------------------------------------------------ running

    async def serve(self, host: str, port: int) -> None:
        """Until SIGTERM or SIGINT; then every socket is closed with 1012 (service
        restart, as Phoenix drains), so that clients reconnect, to another gateway."""
        self.client = AsyncClient(self.node, timeout=self.timeout)
        self.watch = NodeWatch(self.client, self.node)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload_tokens)
        notifier = SystemdNotifier()
        async with serve(
            self.handle, host, port, process_request=self.process_request,
            compression=None, max_size=MAX_FRAME, select_subprotocol=phoenix_if_offered,
            origins=list(self.limits.origins) or None, close_timeout=2,
        ) as server:  # fmt: skip
            log.info("gateway listening on %s:%d, node %s", host, port, self.node)
            pings = asyncio.create_task(self._notify(notifier)) if notifier.active else None
            watching = asyncio.create_task(self.watch.run())
            await stop.wait()
            watching.cancel()
            notifier.stopping()
            log.info("gateway stopping: closing %d socket(s) with 1012", len(self.sockets))
            server.close(code=1012, reason="gateway restarting")
            await server.wait_closed()
            if pings is not None:
                pings.cancel()
        notifier.close()
        await self.client.close(linger=1.0)

    async def _notify(self, notifier: SystemdNotifier) -> None:
        """systemd (Type=notify): READY=1 once listening, STATUS=, and the watchdog fed
        from this event loop, so a loop that is stuck stops feeding it."""
        every = min(0.5, (notifier.watchdog_every or 1.0) / 2)
        while True:
            notifier.tick(time.monotonic(), True, self.summary)
            await asyncio.sleep(every)

    def summary(self) -> str:
        """systemd's STATUS= line."""
        opened, topics = len(self.sockets), len(self.feeds)
        return f"{opened} connection(s), {topics} topic(s), {self.channels} channel(s)"

    @property
    def channels(self) -> int:
        """Sockets joined to topics, summed over the topics."""
        return sum(len(feed.sockets) for feed in self.feeds.values())
