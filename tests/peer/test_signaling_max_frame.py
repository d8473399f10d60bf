"""A hostile signaling server cannot make the peer SDK hold a frame of any size: the
client reads frames up to the server's own frame limit (64 KiB: four times the 16 KiB
message limit); a larger one closes the session with 1009 and raises SignalingClosed
saying so, at join or later."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from passage.peer.errors import SignalingClosed
from passage.peer.sdk.signaling import MAX_FRAME, SignalingSession
from passage.signal.admission import SUBPROTOCOL
from passage.signal.aio.server import FRAME_LIMIT_FACTOR
from passage.signal.rooms import SignalLimits

pytestmark = pytest.mark.timeout(60)

WELCOME = {"type": "welcome", "member": "m1", "identity": "alice", "members": []}


def relayed(size: int) -> str:
    """A ``message`` frame of ``size`` bytes, as the server relays a member's message."""
    frame = {"type": "message", "from": "m2", "data": {"text": ""}}
    padding = size - len(json.dumps(frame))
    frame["data"] = {"text": "z" * padding}
    text = json.dumps(frame)
    assert len(text) == size
    return text


@asynccontextmanager
async def hostile(*frames: str) -> AsyncIterator[str]:
    """A server at ``/signal/{room}`` that sends ``frames`` and waits for the client."""

    async def handle(request: web.Request) -> web.WebSocketResponse:
        websocket = web.WebSocketResponse(protocols=(SUBPROTOCOL,), max_msg_size=0)
        await websocket.prepare(request)
        for frame in frames:
            await websocket.send_str(frame)
        async for _ in websocket:
            pass
        return websocket

    app = web.Application()
    app.router.add_get("/signal/{room}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/"
    finally:
        await runner.cleanup()


def test_the_client_limit_is_the_server_s_frame_limit() -> None:
    assert MAX_FRAME == SignalLimits().message_bytes * FRAME_LIMIT_FACTOR


async def test_a_frame_over_the_limit_after_the_welcome_closes_with_1009() -> None:
    largest_message = relayed(SignalLimits().message_bytes + 200)  # 16 KiB and its envelope
    async with (
        hostile(json.dumps(WELCOME), largest_message, relayed(MAX_FRAME)) as url,
        aiohttp.ClientSession() as session,
    ):
        member = await SignalingSession.join(session, url, "room", "token")
        assert (await member.receive())["type"] == "message"  # what a real server sends
        with pytest.raises(SignalingClosed, match=f"larger than {MAX_FRAME} bytes") as closed:
            await member.receive()
        assert closed.value.code == 1009
        await member.close()


async def test_an_oversized_welcome_fails_the_join() -> None:
    welcome = dict(WELCOME, members=[{"member": "x", "identity": "y" * MAX_FRAME}])
    async with hostile(json.dumps(welcome)) as url, aiohttp.ClientSession() as session:
        with pytest.raises(SignalingClosed) as closed:
            await SignalingSession.join(session, url, "room", "token")
        assert closed.value.code == 1009
