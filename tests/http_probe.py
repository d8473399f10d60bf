"""Raw HTTP clients for tests of the front door's limits: sockets that misbehave on purpose.

aiohttp's client cannot send half a request head or trickle a body, so these
tests speak bytes over ``asyncio`` streams. Nothing here measures time: a test
waits for an outcome (the server closed the connection, a status line came
back) and fails if it has not happened within :data:`WAIT` seconds, a bound
many times the small timeouts the tests configure.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

WAIT = 5.0
"""Seconds to wait for the server to act before the test fails (never a success bound)."""

TICK = 0.05
"""Seconds between two trickled bytes or header lines."""


class StillOpen(AssertionError):
    """The server kept a connection open that it should have closed."""


async def open_raw(
    port: int,
    *,
    host: str = "127.0.0.1",
    source: str | None = None,
    tls: ssl.SSLContext | None = None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to ``host:port`` from ``source`` (any 127.0.0.0/8 address on loopback)."""
    return await asyncio.wait_for(
        asyncio.open_connection(
            host,
            port,
            ssl=tls,
            server_hostname=host if tls else None,
            local_addr=(source, 0) if source else None,
        ),
        WAIT,
    )


async def read_until_closed(reader: asyncio.StreamReader, wait: float = WAIT) -> bytes:
    """Everything the server sends until it closes the connection; :class:`StillOpen` if it
    has not closed it within ``wait`` seconds."""
    received = bytearray()
    try:
        async with asyncio.timeout(wait):
            while True:
                try:
                    chunk = await reader.read(65536)
                except (ConnectionError, ssl.SSLError):
                    return bytes(received)
                if not chunk:
                    return bytes(received)
                received += chunk
    except TimeoutError:
        raise StillOpen(f"still open after {wait} s; received {bytes(received[:200])!r}") from None


async def trickle(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    pieces: list[bytes],
    *,
    wait: float = WAIT,
) -> bytes:
    """Send ``pieces`` one every :data:`TICK` seconds (cycling) until the server closes the
    connection; what it sent. :class:`StillOpen` if it is still open after ``wait`` seconds."""
    reading = asyncio.ensure_future(read_until_closed(reader, wait))
    index = 0
    try:
        while not reading.done():
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.write(pieces[index % len(pieces)])
                await writer.drain()
            index += 1
            await asyncio.wait([reading], timeout=TICK)
        return reading.result()
    finally:
        reading.cancel()
        writer.close()


def status_of(response: bytes) -> int | None:
    """The status code of the first response in ``response``; None if there is none."""
    if not response.startswith(b"HTTP/1."):
        return None
    return int(response.split(b" ", 2)[1])


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, ssl.SSLError, TimeoutError):
        async with asyncio.timeout(WAIT):
            await writer.wait_closed()
