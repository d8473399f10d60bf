"""A rendezvous socket taken over from aiohttp after the handshake, read frame by frame.

aiohttp's own WebSocket joins a message's frames before handing it over, so a
body would be held whole. The relay's HTTP rendezvous sockets answer the
upgrade themselves and hand the connection to a
:class:`~passage.hybrid.framesocket.FrameSocket`: reading pauses the request
handler's transport while the window is full, writing waits on its drain.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from passage.http_errors import HttpError
from passage.hybrid.framesocket import FrameSocket
from passage.hybrid.wsframes import accept_key

__all__ = ["upgrade"]


class _Flow:
    """The request handler's connection, as a :class:`FrameSocket` drives it."""

    def __init__(self, request: web.Request, writer: AbstractStreamWriter) -> None:
        assert request.transport is not None
        self.transport = request.transport
        self.protocol = request.protocol
        self.writer = writer

    def write(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)

    def write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size()

    async def drain(self) -> None:
        if self.transport.is_closing():
            raise ConnectionResetError("the connection is closing")
        await self.writer.drain()

    def pause_reading(self) -> None:
        self.protocol.pause_reading()

    def resume_reading(self) -> None:
        if not self.transport.is_closing():
            self.protocol.resume_reading()

    def close(self) -> None:
        self.transport.close()

    def abort(self) -> None:
        self.transport.abort()


class _Parser:
    """What aiohttp feeds an upgraded connection's bytes to (``set_parser``)."""

    def __init__(self, socket: FrameSocket) -> None:
        self.socket = socket

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.socket.feed_data(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.socket.feed_eof()


async def upgrade(request: web.Request) -> tuple[FrameSocket, web.StreamResponse]:
    """Switch ``request`` to a WebSocket (RFC 6455 §4.2.2) run by a :class:`FrameSocket`.

    The handler returns the response only once it is done with the socket
    (aiohttp closes the connection then). :class:`HttpError` 400 for a request
    that is not a WebSocket handshake.
    """
    key = request.headers.get("Sec-WebSocket-Key", "")
    if request.headers.get("Upgrade", "").lower() != "websocket" or not key:
        raise HttpError(400, "BadRequest", "a rendezvous address takes a WebSocket handshake")
    response = web.StreamResponse(
        status=101,
        headers={"Upgrade": "websocket", "Connection": "Upgrade",
                 "Sec-WebSocket-Accept": accept_key(key)},
    )  # fmt: skip
    response.force_close()
    writer = await response.prepare(request)
    assert writer is not None
    socket = FrameSocket(_Flow(request, writer), client=False)
    request.protocol.set_parser(_Parser(socket))  # type: ignore[arg-type]
    return socket, response
