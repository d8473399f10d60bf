"""TCP through the relay: expose a local port, or reach an exposed one (like ``ssh -L``).

Bytes travel as binary WebSocket messages. WebSockets have no half-close, so
the two ends agree on one: an empty binary message means "no more bytes this
way" (TCP FIN), and the stream closes once both ways have ended. A sender
that never sends empty messages (any other Hybrid Connections client) simply
never half-closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_module
from collections.abc import Callable

from passage.hybrid.endpoint import RelayEndpoint
from passage.hybrid.sdk.errors import HybridConnectionError, MessageTooLarge
from passage.hybrid.sdk.listener import HybridConnectionListener
from passage.hybrid.sdk.sender import connect
from passage.hybrid.sdk.stream import HybridStream
from passage.hybrid.sdk.tokens import TokenProvider

__all__ = ["CHUNK", "bridge", "expose_tcp", "forward_tcp"]

logger = logging.getLogger("passage.hybrid.sdk")

CHUNK = 64 * 1024
"""Bytes read from a TCP socket at a time: one WebSocket message each."""

END_OF_DATA = b""


async def bridge(
    stream: HybridStream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Copy bytes both ways between ``stream`` and a TCP connection until both ways end."""

    async def tcp_to_stream() -> None:
        while data := await reader.read(CHUNK):
            await stream.send(data)
        await stream.send(END_OF_DATA)

    async def stream_to_tcp() -> None:
        while (message := await stream.receive()) is not None:
            if message == END_OF_DATA:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(message.encode() if isinstance(message, str) else message)
            await writer.drain()
        raise ConnectionResetError("the stream closed")

    outgoing = asyncio.create_task(tcp_to_stream())
    incoming = asyncio.create_task(stream_to_tcp())
    try:
        # Either way failing (a reset, the stream closing) ends both; a clean end
        # of one way waits for the other.
        done, _ = await asyncio.wait((outgoing, incoming), return_when=asyncio.FIRST_EXCEPTION)
        errors = [task.exception() for task in done if task.exception() is not None]
        for error in errors:
            if isinstance(error, MessageTooLarge):  # a relay beyond our limit: say so
                logger.warning("tunnel ended: %s", error)
        if errors:
            logger.debug("tunnel ended early: %s", errors)
    finally:
        for task in (outgoing, incoming):
            task.cancel()
        await asyncio.gather(outgoing, incoming, return_exceptions=True)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        await stream.close()


async def expose_tcp(
    listener: HybridConnectionListener,
    host: str,
    port: int,
    on_stream: Callable[[HybridStream], None] | None = None,
) -> None:
    """Serve every stream ``listener`` accepts by connecting it to ``host:port``, until closed.

    A stream whose service cannot be reached is closed with 1011 and a reason.
    """
    async with asyncio.TaskGroup() as group:
        async for stream in listener:
            if on_stream is not None:
                on_stream(stream)
            group.create_task(_to_service(stream, host, port))


async def _to_service(stream: HybridStream, host: str, port: int) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as error:
        logger.warning("cannot reach %s:%d for a relayed stream: %s", host, port, error)
        await stream.close(1011, "the exposed service is unreachable")
        return
    await bridge(stream, reader, writer)


async def forward_tcp(
    endpoint: RelayEndpoint,
    name: str,
    tokens: TokenProvider | None,
    host: str,
    port: int,
    *,
    ssl: ssl_module.SSLContext | None = None,
) -> asyncio.Server:
    """A local TCP server on ``host:port`` whose connections reach ``name``'s listener.

    A connection the relay refuses (no listener, a bad token) is closed at
    once, and the refusal logged.
    """

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            stream = await connect(endpoint, name, tokens, ssl=ssl)
        except HybridConnectionError as error:
            logger.warning("hybrid connection %s refused a connection: %s", name, error)
            writer.close()
            return
        await bridge(stream, reader, writer)

    return await asyncio.start_server(on_connection, host, port)
