"""The ceiling for bench/gateway: a bare `websockets` server (compression off) that
sends one message to every connection, with no zdps and no Phoenix behind it.

Stdin lines "send RATE SECONDS HOW" send RATE x SECONDS messages to every connection,
RATE a second, each the push the gateway would write, with "t" the CLOCK_MONOTONIC ns at
sending; it prints "sent N SECONDS_IT_TOOK" after. HOW is ``broadcast`` (websockets'
own ``broadcast``, which frames the message for each connection) or ``frames`` (the
frame made once and written to each connection's transport, as the gateway does:
zdps/gateway/fanout.py). Prints "listening" once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from websockets.asyncio.server import broadcast, serve
from websockets.protocol import State

from zdps.gateway.fanout import wire_frame

TICK = 0.001  # seconds: messages due are sent together, at most this far apart


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    async def handler(ws) -> None:
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", args.port, compression=None) as server:
        print("listening", flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode().split():
            rate, seconds, framed = float(line[1]), float(line[2]), line[3] == "frames"
            start, sent, total = time.monotonic(), 0, round(rate * seconds)
            while sent < total:
                due = min(total, int((time.monotonic() - start) * rate) + 1)
                while sent < due:
                    frame = ["1", None, "fan", "event", {"t": time.monotonic_ns()}]
                    text = json.dumps(frame, separators=(",", ":"))
                    if framed:
                        data = wire_frame(text)
                        for ws in server.connections:
                            if ws.protocol.state is State.OPEN:
                                ws.transport.write(data)
                    else:
                        broadcast(server.connections, text)
                    sent += 1
                await asyncio.sleep(TICK)
            print(f"sent {sent} {time.monotonic() - start:.3f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
