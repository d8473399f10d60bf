"""A WebSocket read and written frame by frame, with back-pressure both ways.

HTTP bodies cross a rendezvous socket as one binary message split into frames
(reference §2.5). :class:`FrameSocket` lets both ends stream them: it hands out
a message's payload as it arrives (:meth:`FrameSocket.receive_body`), pausing
the transport while more than ``window`` bytes wait unread, and sends frames
one at a time, waiting for the transport to drain (:meth:`FrameSocket.send`).
So a slow reader slows the writer, and the memory a body takes is the window,
not the body. Pings are answered, a close is answered and ends the socket.

The relay runs it on a connection aiohttp upgraded (:class:`Flow` over its
request handler); the SDK on its own client connection (:func:`connect`).
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl as ssl_module
import urllib.parse
from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol

from passage.hybrid.wsframes import (
    Control,
    DataPiece,
    FrameError,
    FrameReader,
    Opcode,
    accept_key,
    close_payload,
    encode_frame,
    parse_close,
)

__all__ = [
    "BodyBroken",
    "Flow",
    "FrameSocket",
    "HandshakeRefused",
    "connect",
]

WINDOW = 256 * 1024
"""Bytes a socket lets wait unread before it stops reading its peer."""
FRAME = 64 * 1024
"""Largest frame we send: a body goes out in pieces of at most this."""
MAX_TEXT = 64 * 1024
"""Largest text message (a JSON head) read: the control channel's own limit."""


class Flow(Protocol):
    """What a :class:`FrameSocket` needs of its connection."""

    def write(self, data: bytes) -> None: ...
    def write_buffer_size(self) -> int: ...
    async def drain(self) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


class BodyBroken(ConnectionError):
    """The socket ended inside a message: the body is incomplete and must not pass as whole."""


class HandshakeRefused(ConnectionError):
    """The server did not switch protocols; ``status`` is what it answered."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"{status} {text}".strip())
        self.status = status


class FrameSocket:
    """One WebSocket connection; ``client`` masks what it sends (RFC 6455 §5.3)."""

    def __init__(self, flow: Flow, *, client: bool, window: int = WINDOW) -> None:
        self.flow = flow
        self.client = client
        self.window = window
        self.close_code: int | None = None
        """The code the peer closed with, or ours (1002, 1009) when we ended it."""
        self._reader = FrameReader(MAX_TEXT)
        self._pieces: deque[DataPiece] = deque()
        self._waiting = 0
        self._paused = False
        self._ended = False
        self._wake: asyncio.Event = asyncio.Event()
        self._text: list[bytes] = []

    # --- what the connection feeds it --------------------------------------------------

    def feed_data(self, data: bytes) -> None:
        if self._ended:
            return
        try:
            events = self._reader.feed(data)
        except FrameError as error:
            self.close_code = error.code
            self._write(Opcode.CLOSE, close_payload(error.code, error.reason))
            self._end()
            self.flow.close()
            return
        for event in events:
            if isinstance(event, Control):
                self._on_control(event)
            else:
                self._pieces.append(event)
                self._waiting += len(event.data)
        if self._waiting > self.window and not self._paused:
            self._paused = True
            self.flow.pause_reading()
        self._wake.set()

    def feed_eof(self) -> None:
        self._end()

    def _on_control(self, control: Control) -> None:
        if control.opcode is Opcode.PING:
            if self.flow.write_buffer_size() > self.window:
                # Pings from a peer that reads nothing would pile our pongs up unread.
                self.close_code = 1008
                self._end()
                self.flow.abort()
                return
            self._write(Opcode.PONG, control.payload)
        elif control.opcode is Opcode.CLOSE:
            if self.close_code is None:
                self.close_code = parse_close(control.payload)
                self._write(Opcode.CLOSE, control.payload[:2])
            self._end()
            self.flow.close()

    def _end(self) -> None:
        self._ended = True
        self._wake.set()

    # --- reading -----------------------------------------------------------------------

    async def _next_piece(self) -> DataPiece | None:
        while not self._pieces:
            if self._ended:
                return None
            self._wake.clear()
            await self._wake.wait()
        piece = self._pieces.popleft()
        self._waiting -= len(piece.data)
        if self._paused and self._waiting <= self.window // 2:
            self._paused = False
            self.flow.resume_reading()
        return piece

    async def receive_text(self) -> str | None:
        """The next text message (a JSON head); None once the socket has ended.

        :class:`BodyBroken` when a binary message comes instead: the caller
        expected a head, the peer is not speaking the protocol.
        """
        while True:
            piece = await self._next_piece()
            if piece is None:
                return None
            if piece.binary:
                if not piece.data and piece.last:
                    continue  # hyco-https's empty message after a body:false response
                raise BodyBroken("a binary message where a head was expected")
            self._text.append(piece.data)
            if piece.last:
                text, self._text = b"".join(self._text), []
                try:
                    return text.decode("utf-8")
                except UnicodeDecodeError:
                    raise BodyBroken("a text message that is not UTF-8") from None

    async def receive_body(self) -> AsyncIterator[bytes]:
        """The next binary message's payload, piece by piece as it arrives.

        Raises :class:`BodyBroken` if the socket ends (or a text message comes)
        before the message's last frame: a cut body never looks whole.
        """
        while True:
            piece = await self._next_piece()
            if piece is None:
                raise BodyBroken("the rendezvous socket ended inside a body")
            if not piece.binary:
                raise BodyBroken("a text message where a body was expected")
            if piece.data:
                yield piece.data
            if piece.last:
                return

    # --- writing -----------------------------------------------------------------------

    def _write(self, opcode: Opcode, payload: bytes, fin: bool = True) -> None:
        mask = os.urandom(4) if self.client else b""
        self.flow.write(encode_frame(opcode, payload, fin=fin, mask=mask))

    async def send(self, opcode: Opcode, payload: bytes, *, fin: bool = True) -> None:
        """One frame, then wait until the connection can take more."""
        if self._ended:
            raise ConnectionResetError("the rendezvous socket has ended")
        self._write(opcode, payload, fin)
        await self.flow.drain()

    async def send_text(self, text: str) -> None:
        await self.send(Opcode.TEXT, text.encode("utf-8"))

    async def send_body(self, chunks: AsyncIterator[bytes] | bytes) -> None:
        """One binary message: ``chunks`` as frames of at most :data:`FRAME` bytes, the
        last with FIN. If ``chunks`` fails, the message is left open and the caller
        aborts the socket, so the peer sees a cut body, never a short one."""
        opcode = Opcode.BINARY
        source = _single(chunks) if isinstance(chunks, bytes) else chunks
        async for chunk in source:
            for start in range(0, len(chunk), FRAME):
                await self.send(opcode, chunk[start : start + FRAME], fin=False)
                opcode = Opcode.CONTINUATION
        await self.send(opcode, b"", fin=True)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame and close the connection."""
        if not self._ended:
            self._write(Opcode.CLOSE, close_payload(code, reason))
            self._end()
        self.flow.close()

    def abort(self) -> None:
        """Drop the connection without a close frame: whatever message was open is cut."""
        self._end()
        self.flow.abort()

    @property
    def ended(self) -> bool:
        return self._ended


async def _single(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data


# --- the client side (the SDK's rendezvous) ------------------------------------------------


class _ClientProtocol(asyncio.Protocol):
    """The SDK's connection: the handshake's answer, then frames into a :class:`FrameSocket`."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.socket: FrameSocket | None = None
        self.handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._head = bytearray()
        self._drained: asyncio.Event = asyncio.Event()
        self._drained.set()
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.socket is not None:
            self.socket.feed_data(data)
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > 16 * 1024 and not self.handshake.done():
                self.handshake.set_exception(HandshakeRefused(0, "an endless handshake answer"))
            return
        head, rest = bytes(self._head[:end]).decode("latin-1"), bytes(self._head[end + 4 :])
        status_line, *lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
        if self.handshake.done():
            return
        if status != 101 or headers.get("sec-websocket-accept") != accept_key(self.key):
            self.handshake.set_exception(
                HandshakeRefused(status, parts[2] if len(parts) > 2 else "")
            )
            return
        self.socket = FrameSocket(_ClientFlow(self), client=True)
        self.handshake.set_result(None)
        if rest:
            self.socket.feed_data(rest)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._drained.set()
        if not self.handshake.done():
            self.handshake.set_exception(HandshakeRefused(0, "the connection closed"))
        if self.socket is not None:
            self.socket.feed_eof()

    def pause_writing(self) -> None:
        self._drained.clear()

    def resume_writing(self) -> None:
        self._drained.set()

    async def drain(self) -> None:
        if self._drained.is_set():
            # Yield once even when not paused: a connection that just died reports it
            # (connection_lost) on the next loop turn, before we write into it again.
            await asyncio.sleep(0)
        await self._drained.wait()
        if self.lost:
            raise ConnectionResetError("the rendezvous connection was lost")


class _ClientFlow:
    def __init__(self, protocol: _ClientProtocol) -> None:
        self.protocol = protocol
        assert protocol.transport is not None
        self.transport = protocol.transport

    def write(self, data: bytes) -> None:
        if not self.transport.is_closing() and not self.protocol.lost:
            self.transport.write(data)

    def write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size()

    async def drain(self) -> None:
        await self.protocol.drain()

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        if not self.transport.is_closing():
            self.transport.resume_reading()

    def close(self) -> None:
        self.transport.close()

    def abort(self) -> None:
        self.transport.abort()


async def connect(url: str, ssl: ssl_module.SSLContext | bool = True) -> FrameSocket:
    """Open ``url`` (``ws://`` or ``wss://``, used verbatim: a rendezvous address) as a
    client; :class:`HandshakeRefused` (an OSError) if the server does not switch."""
    parsed = urllib.parse.urlsplit(url)
    secure = parsed.scheme == "wss"
    host = parsed.hostname or ""
    port = parsed.port or (443 if secure else 80)
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    target = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
    loop = asyncio.get_running_loop()
    context: ssl_module.SSLContext | None = None
    if secure:
        context = (
            ssl if isinstance(ssl, ssl_module.SSLContext) else ssl_module.create_default_context()
        )
    transport, protocol = await loop.create_connection(
        lambda: _ClientProtocol(key), host, port, ssl=context,
        server_hostname=host if secure else None,
    )  # fmt: skip
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {parsed.netloc}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    transport.write(request.encode("latin-1"))
    try:
        await protocol.handshake
    except BaseException:
        transport.abort()
        raise
    assert protocol.socket is not None
    return protocol.socket
