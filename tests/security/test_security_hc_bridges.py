"""Bridged Hybrid Connections WebSockets are bounded (issue 10).

One 256 MiB frame from an anonymous sender used to take the server from
137 MiB to a 1 GiB peak: a bridge took messages of any size. Now a message over
``--hc-max-message`` (1 MiB) closes its sender with 1009 as soon as the frame
header announces it (RFC 6455 §7.4.1), the listener with 1001; a slow reader
slows the writer instead of filling the relay; and both sockets of a bridge
are pinged, so a peer that died without a FIN ends its bridge.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from api_harness import Api, api_server
from passage.hybrid import framesocket
from passage.hybrid.wsframes import Opcode

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Api]:
    async with api_server(tmp_path) as api:
        admin = api.running.api.hybrid_admin
        assert admin is not None
        await admin.create_connection("open", requires_client_authorization=False)
        yield api


class Listener:
    """A protocol listener that meets each sender and keeps the socket for the test."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.met: asyncio.Queue[aiohttp.ClientWebSocketResponse] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []

    async def start(self) -> None:
        from passage.hybrid.entities import ROOT_RULE
        from passage.hybrid.sas import make_sas_token

        admin = self.api.running.api.hybrid_admin
        assert admin is not None
        key = admin.namespace().rules[ROOT_RULE].primary_key
        token = make_sas_token(f"{self.api.http_base}/open", ROOT_RULE, key, int(time.time()) + 600)
        control = await self.api.session.ws_connect(
            f"{ws_base(self.api)}/$hc/open?sb-hc-action=listen",
            headers={"ServiceBusAuthorization": token},
        )

        self.sockets.append(control)

        async def serve() -> None:
            async for message in control:
                accept = json.loads(message.data)["accept"]
                socket = await self.api.session.ws_connect(accept["address"], max_msg_size=0)
                self.sockets.append(socket)
                await self.met.put(socket)

        self.task = asyncio.create_task(serve())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        for socket in self.sockets:  # each holds a connection until closed
            await socket.close()


def ws_base(api: Api) -> str:
    return api.http_base.replace("http://", "ws://")


@pytest.fixture
async def listener(relay: Api) -> AsyncIterator[Listener]:
    listening = Listener(relay)
    await listening.start()
    yield listening
    await listening.stop()


async def closed_with(socket: aiohttp.ClientWebSocketResponse) -> int | None:
    while True:
        message = await asyncio.wait_for(socket.receive(), 30)
        if message.type is aiohttp.WSMsgType.CLOSE:
            return int(message.data)
        if message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return socket.close_code


async def test_a_256_mib_frame_closes_its_sender_with_1009_before_it_is_read(
    relay: Api, listener: Listener
) -> None:
    sender = await framesocket.connect(f"{ws_base(relay)}/$hc/open?sb-hc-action=connect")
    far_side = await asyncio.wait_for(listener.met.get(), 10)
    # A binary frame header announcing 256 MiB (masked, as a client sends), then 64 KiB.
    header = struct.pack("!BBQ", 0x82, 0x80 | 127, 256 * 1024 * 1024) + os.urandom(4)
    sender.flow.write(header + os.urandom(65536))
    assert await asyncio.wait_for(sender.receive_text(), 10) is None  # the relay closed it
    assert sender.close_code == 1009
    assert await closed_with(far_side) == 1001
    await far_side.close()


async def test_a_message_just_under_the_limit_passes(relay: Api, listener: Listener) -> None:
    async with relay.session.ws_connect(f"{ws_base(relay)}/$hc/open?sb-hc-action=connect") as ws:
        far_side = await asyncio.wait_for(listener.met.get(), 10)
        payload = os.urandom(relay.running.relay.settings.max_message - 1)
        await ws.send_bytes(payload)
        assert (await asyncio.wait_for(far_side.receive(), 10)).data == payload
        await far_side.close()


async def test_a_slow_reader_slows_the_writer(relay: Api, listener: Listener) -> None:
    """The listener reads nothing: the sender's sends stall long before 64 MiB are taken
    (the kernel's socket buffers hold a few MiB; the relay holds a window)."""
    sender = await framesocket.connect(f"{ws_base(relay)}/$hc/open?sb-hc-action=connect")
    far_side = await asyncio.wait_for(listener.met.get(), 10)
    chunk, taken = os.urandom(65536), 0
    with pytest.raises(TimeoutError):
        while taken < 64 * 1024 * 1024:
            await asyncio.wait_for(sender.send(Opcode.BINARY, chunk), 3)
            taken += len(chunk)
    assert taken < 48 * 1024 * 1024
    sender.abort()
    await far_side.close()


async def test_a_dead_sender_is_noticed_by_its_pings_and_ends_the_bridge(
    relay: Api, listener: Listener
) -> None:
    hybrid = relay.running.relay
    hybrid.settings = dataclasses.replace(hybrid.settings, heartbeat=0.5)
    sender = await framesocket.connect(f"{ws_base(relay)}/$hc/open?sb-hc-action=connect")
    far_side = await asyncio.wait_for(listener.met.get(), 10)
    await sender.send(Opcode.TEXT, b"alive")
    assert (await asyncio.wait_for(far_side.receive(), 10)).data == "alive"
    sender.flow.pause_reading()  # a peer that died without a FIN: it answers no ping
    assert await closed_with(far_side) == 1001
    sender.abort()
    await far_side.close()
