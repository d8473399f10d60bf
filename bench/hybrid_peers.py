"""The far ends of the Hybrid Connections benchmark, each run as its own process.

``direct PORT CERT KEY``: a WebSocket server on 127.0.0.1 (plain on PORT, TLS
on PORT+1) — what a client would reach without a relay. ``listener URL NAME
RULE KEY CA``: a ``passage.hybrid.sdk`` listener on hybrid connection NAME. Both
serve every stream with the same :func:`sink`, so the only difference the
client sees is the relay in between. Each prints ``ready`` when it serves.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType, web

from passage.hybrid.sdk import (
    HybridConnectionListener,
    HybridStream,
    KeyTokenProvider,
    RelayEndpoint,
)

Send = Callable[[str], Awaitable[None]]


class Sink:
    """Counts binary bytes; answers ``done`` with ``done N`` and ``ping`` with ``pong``."""

    def __init__(self) -> None:
        self.received = 0

    async def on_text(self, text: str, send: Send) -> None:
        if text == "done":
            await send(f"done {self.received}")
            self.received = 0
        elif text == "ping":
            await send("pong")


async def serve_stream(stream: HybridStream) -> None:
    sink = Sink()
    async for message in stream:
        if isinstance(message, bytes):
            sink.received += len(message)
        else:
            await sink.on_text(message, stream.send)


async def direct(port: int, cert: str, key: str) -> None:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        websocket = web.WebSocketResponse(max_msg_size=0)
        await websocket.prepare(request)
        sink = Sink()
        async for message in websocket:
            if message.type is WSMsgType.BINARY:
                sink.received += len(message.data)
            elif message.type is WSMsgType.TEXT:
                await sink.on_text(message.data, websocket.send_str)
        return websocket

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await web.TCPSite(runner, "127.0.0.1", port + 1, ssl_context=tls).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


async def listener(url: str, name: str, rule: str, key: str, ca: str) -> None:
    endpoint = RelayEndpoint.parse(url)
    tls = ssl.create_default_context(cafile=ca)
    tokens = KeyTokenProvider(rule, key)
    async with HybridConnectionListener(endpoint, name, tokens, ssl=tls) as hybrid:
        print("ready", flush=True)
        async with asyncio.TaskGroup() as group:
            async for stream in hybrid:
                group.create_task(serve_stream(stream))


def main() -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    role, *args = sys.argv[1:]
    if role == "direct":
        asyncio.run(direct(int(args[0]), args[1], args[2]))
    else:
        asyncio.run(listener(*args))


if __name__ == "__main__":
    main()
