"""A small TCP proxy a test can cut and restore: one node's link to Redis or PostgreSQL.

``cut()`` closes every connection through it and refuses new ones (as a stopped server
looks to the node); ``cut(silent=True)`` keeps them open but passes nothing either way
and holds new ones unanswered (as a host gone off the network, or a firewall that drops,
looks: nothing fails until a timeout says so); ``restore()`` lets them through again.
"""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, target: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.target = target
        self.host = host
        self.port = 0
        self.open = True
        self.silent = False
        self._restored = asyncio.Event()
        self._restored.set()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, scheme: str, rest: str = "") -> str:
        return f"{scheme}://{self.host}:{self.port}{rest}"

    def cut(self, *, silent: bool = False) -> None:
        self.open = False
        self.silent = silent
        if silent:
            self._restored.clear()
            return
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()

    def restore(self) -> None:
        self.open = True
        self.silent = False
        self._restored.set()

    async def close(self) -> None:
        self.restore()
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._restored.wait()  # a silent cut: the connection waits, unanswered
        if not self.open:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._pipes.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                await self._restored.wait()  # a silent cut holds what is in flight
                sink.write(data)
                await sink.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            self._pipes.discard(sink)
            with contextlib.suppress(Exception):
                sink.transport.abort()
