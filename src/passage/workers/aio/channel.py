"""One end of the parent-worker ``socketpair``, over asyncio streams."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

from passage.workers.protocol import FrameReader, Message, encode

__all__ = ["Channel"]

READ_SIZE = 1 << 16


class Channel:
    """Send messages, and read them until the other end closes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._frames = FrameReader()

    @classmethod
    async def open(cls, sock: socket.socket) -> Channel:
        """Wrap one end of a ``socketpair`` (a Unix stream socket)."""
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=READ_SIZE)
        return cls(reader, writer)

    def send(self, message: Message) -> None:
        """Queue ``message``; nothing is lost once queued unless this process dies."""
        if not self._writer.is_closing():
            self._writer.write(encode(message))

    async def drain(self) -> None:
        """Wait until what was sent is in the kernel's buffer (or the other end is gone)."""
        try:
            await self._writer.drain()
        except ConnectionError:
            pass

    async def messages(self) -> AsyncIterator[Message]:
        """Each message received, until the other end closes; raises ``ChannelError`` if
        it sends what no Passage process sends."""
        while True:
            try:
                data = await self._reader.read(READ_SIZE)
            except ConnectionError:
                return
            if not data:
                return
            for message in self._frames.feed(data):
                yield message

    async def close(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except ConnectionError:
            pass
