"""A hostile relay cannot make the SDK hold a message of any size: a sender's stream, a
listener's control channel and the streams it accepts read at most ``max_message``
(the relay's own ``--hc-max-message``, 1 MiB by default); past it the socket is closed
with 1009 and the caller gets :class:`MessageTooLarge`, saying which limit. An HTTP
sender's answer is read up to ``max_body`` (16 MiB): past it, :class:`BodyTooLarge`."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from passage.hybrid.aio.relay import RelaySettings
from passage.hybrid.control import accept_message
from passage.hybrid.endpoint import RelayEndpoint
from passage.hybrid.sdk import (
    MAX_MESSAGE,
    BodyTooLarge,
    HybridConnectionListener,
    MessageTooLarge,
    StaticTokenProvider,
    connect,
    request,
)
from passage.hybrid.sdk.http import MAX_BUFFERED_BODY

pytestmark = pytest.mark.timeout(60)

OVERSIZED = b"x" * MAX_MESSAGE


class HostileRelay:
    """An aiohttp server that upgrades any path and sends ``OVERSIZED``; a listen path
    (``sb-hc-action=listen``) gets an ``accept`` first, pointing back here. Records the
    close code each client answered with."""

    def __init__(self) -> None:
        self.closes: list[int | None] = []
        self.port = 0
        self.listens = 0

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        websocket = web.WebSocketResponse(max_msg_size=0)
        await websocket.prepare(request)
        if request.query.get("sb-hc-action") == "listen":
            self.listens += 1
            if self.listens == 1:  # the first control channel gets a sender to meet
                address = f"ws://127.0.0.1:{self.port}/$hc/rendezvous?sb-hc-id=1"
                await websocket.send_str(accept_message(address, "1", {}, None))
        await websocket.send_bytes(OVERSIZED)
        async for _ in websocket:  # until the client closes
            pass
        self.closes.append(websocket.close_code)
        return websocket

    @asynccontextmanager
    async def running(self) -> AsyncIterator[RelayEndpoint]:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        try:
            yield RelayEndpoint("ws", "127.0.0.1", self.port)
        finally:
            await runner.cleanup()


def test_the_sdk_reads_what_the_relay_sends_by_default() -> None:
    assert MAX_MESSAGE == RelaySettings("node").max_message  # --hc-max-message's default


async def test_a_sender_refuses_a_message_over_max_message_with_1009() -> None:
    relay = HostileRelay()
    async with relay.running() as endpoint:
        stream = await connect(endpoint, "hc", StaticTokenProvider("token"))
        with pytest.raises(MessageTooLarge, match=r"max_message \(1048576 bytes\)"):
            await stream.receive()
        await stream.close()
        for _ in range(100):
            if relay.closes:
                break
            await asyncio.sleep(0.05)
    assert relay.closes == [1009]


async def test_a_smaller_max_message_is_the_one_enforced() -> None:
    relay = HostileRelay()
    async with relay.running() as endpoint:
        stream = await connect(endpoint, "hc", StaticTokenProvider("token"), max_message=1000)
        with pytest.raises(MessageTooLarge, match=r"\(1000 bytes\)"):
            await stream.receive()
        await stream.close()


async def test_a_listener_refuses_oversized_control_messages_and_streams(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="passage.hybrid")
    relay = HostileRelay()
    async with relay.running() as endpoint:
        listener = HybridConnectionListener(
            endpoint, "hc", StaticTokenProvider("token"), reconnect_delays=(0.05,)
        )
        await listener.open()
        try:
            stream = await asyncio.wait_for(listener.accept(), 10)
            with pytest.raises(MessageTooLarge):
                await stream.receive()
            for _ in range(200):  # the control channel was closed too, and dialled again
                if listener.connections >= 2 and len(relay.closes) >= 2:
                    break
                await asyncio.sleep(0.05)
        finally:
            await listener.close()
    assert relay.closes[:2] == [1009, 1009]  # the stream and the control channel, in any order
    lines = [r.getMessage() for r in caplog.records if "max_message" in r.getMessage()]
    assert lines and "1048576 bytes" in lines[0]


async def test_a_message_of_max_message_is_read_whole() -> None:
    """The bound is not tighter than the relay's: the largest message it bridges arrives
    (aiohttp, on both ends, takes messages shorter than ``max_msg_size``)."""

    async def handle(request: web.Request) -> web.WebSocketResponse:
        websocket = web.WebSocketResponse()
        await websocket.prepare(request)
        await websocket.send_bytes(b"y" * (MAX_MESSAGE - 1))
        await websocket.close()
        return websocket

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        endpoint = RelayEndpoint("ws", "127.0.0.1", runner.addresses[0][1])
        stream = await connect(endpoint, "hc", StaticTokenProvider("token"))
        assert await stream.receive() == b"y" * (MAX_MESSAGE - 1)
        await stream.close()
    finally:
        await runner.cleanup()


async def test_aiohttp_reports_1009_as_the_sdk_expects() -> None:
    """The SDK tells an oversized message by aiohttp's ERROR with 1009: pin that."""
    relay = HostileRelay()
    async with relay.running() as endpoint, aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{endpoint.base_url}/x", max_msg_size=10) as websocket:
            message = await websocket.receive()
            assert message.type is aiohttp.WSMsgType.ERROR
            assert isinstance(message.data, aiohttp.WebSocketError)
            assert message.data.code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG


@asynccontextmanager
async def answering(body: bytes, *, chunked: bool) -> AsyncIterator[RelayEndpoint]:
    """An HTTP server that answers any request with ``body`` (with Content-Length, or
    chunked without one)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if not chunked:
            return web.Response(body=body)
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for offset in range(0, len(body), 1000):
            await response.write(body[offset : offset + 1000])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield RelayEndpoint("ws", "127.0.0.1", runner.addresses[0][1])
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_an_http_answer_over_max_body_is_refused(chunked: bool) -> None:
    tokens = StaticTokenProvider("token")
    async with answering(b"z" * 5001, chunked=chunked) as endpoint:
        with pytest.raises(BodyTooLarge, match=r"max_body \(5000 bytes\)"):
            await request(endpoint, "hc", tokens, max_body=5000)
        reply = await request(endpoint, "hc", tokens, max_body=5001)
        assert reply.body == b"z" * 5001


def test_an_http_answer_is_bounded_as_a_listener_bounds_a_request() -> None:
    assert inspect.signature(request).parameters["max_body"].default == MAX_BUFFERED_BODY
