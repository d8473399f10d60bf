"""passage.frontdoor.guard on a bare front door: the timeouts that need a product of their own.

A response nobody reads, and a handler that holds off reading a body, need a
handler that streams or waits on purpose; the API never does either. Limits
are small (0.3 s) and every wait for an outcome is bounded by ``WAIT``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from http_probe import WAIT, close, open_raw, read_until_closed, status_of
from passage.frontdoor import FrontDoor, Handler, Paths
from passage.http_limits import HttpLimits

SHORT = 0.3


@pytest.fixture
async def door() -> AsyncIterator[FrontDoor]:
    door = FrontDoor(
        limits=HttpLimits(
            write_timeout=SHORT, body_timeout=SHORT, body_min_rate=1_000_000,
            request_head_timeout=30.0, idle_timeout=30.0,
        )
    )  # fmt: skip
    yield door
    await door.stop()


async def listen(door: FrontDoor, path: str, handler: Handler) -> int:
    door.add(Paths(frozenset({path.strip("/")}), lambda p: p == path, "the test"), handler)
    return (await door.listen("127.0.0.1", 0, None))[1]


async def eventually(condition: Callable[[], object]) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "not within WAIT"
        await asyncio.sleep(0.02)


async def test_a_response_the_client_never_reads_is_cut(door: FrontDoor) -> None:
    ended: list[BaseException | None] = []

    async def flood(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        try:
            for _ in range(10_000):  # up to 640 MB: far more than any socket buffer
                await response.write(b"x" * 65536)
        except ConnectionError as error:
            ended.append(error)
            raise
        ended.append(None)
        return response

    port = await listen(door, "/flood", flood)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect(("127.0.0.1", port))
    client.sendall(b"GET /flood HTTP/1.1\r\nHost: x\r\n\r\n")  # and never read
    try:
        await eventually(lambda: door.keeper.refused["response_stalled"] == 1)
        await eventually(lambda: ended)
        assert isinstance(ended[0], ConnectionError)
    finally:
        client.close()


async def test_a_body_the_handler_holds_off_is_not_the_clients_fault(door: FrontDoor) -> None:
    """The handler reads nothing for three body windows; the server stops reading (back-
    pressure), the client cannot send, and the connection must survive to be answered."""
    body = b"z" * (8 * 1024 * 1024)

    async def slow_reader(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(3 * SHORT)
        size = 0
        async for chunk in request.content.iter_chunked(65536):
            size += len(chunk)
        return web.Response(text=str(size))

    port = await listen(door, "/upload", slow_reader)
    reader, writer = await open_raw(port)
    writer.write(
        f"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    writer.write(body)
    await writer.drain()
    answer = await read_until_closed(reader)
    assert status_of(answer) == 200
    assert answer.endswith(str(len(body)).encode())
    assert door.keeper.refused["request_body_too_slow"] == 0
    await close(writer)


async def test_counts_are_given_back_whatever_way_a_connection_ends(door: FrontDoor) -> None:
    async def ok(request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    port = await listen(door, "/ok", ok)
    for ending in ("answered", "reset", "silent"):
        reader, writer = await open_raw(port)
        if ending == "answered":
            writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert status_of(await read_until_closed(reader)) == 200
        elif ending == "reset":
            writer.write(b"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nab")
            await writer.drain()
            writer.transport.abort()
        await close(writer)
    await eventually(lambda: door.keeper.counts.total == 0)
