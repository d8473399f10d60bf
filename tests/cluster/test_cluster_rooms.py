"""Signaling rooms across nodes: a room is homed on the node of its first member, members
on other nodes are proxied to it; when the home dies its proxied members are closed with
1012 (reconnect), and rejoining works: the room is homed afresh."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as redis
from cluster_nodes import Node, cluster
from cluster_services import REDIS_URL

from passage.identity.scopes import Scope
from passage.signal import CloseCode
from passage.signal.homing import HOME_GONE

pytestmark = pytest.mark.postgres

WAIT = 10.0


async def voip_token(node: Node) -> tuple[str, str]:
    service = node.server.running.api.service
    identity = await service.create_identity()
    issued = service.issue_token(service.state.keys.primary, identity, (Scope.VOIP,), 60)
    return str(identity), issued.token


@asynccontextmanager
async def member(
    http: aiohttp.ClientSession, node: Node, room: str, token: str
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    ws = await http.ws_connect(
        f"{node.ws_base}/signal/{room}", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        yield ws
    finally:
        await ws.close()


async def frame(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message = await ws.receive(timeout=WAIT)
    assert message.type is aiohttp.WSMsgType.TEXT, message
    decoded: dict[str, Any] = json.loads(message.data)
    return decoded


async def test_members_on_two_nodes_talk_and_the_home_s_death_sends_them_to_rejoin(
    tmp_path: Path, redis_prefix: str, pg_schema: str
) -> None:
    async with (
        cluster(tmp_path, "abc", prefix=redis_prefix, schema=pg_schema) as (a, b, c),
        aiohttp.ClientSession() as http,
    ):
        alice, alice_token = await voip_token(a)
        bob, bob_token = await voip_token(c)  # a token of any node works on every node
        async with member(http, a, "r1", alice_token) as on_a:
            welcome = await frame(on_a)
            assert (welcome["type"], welcome["identity"]) == ("welcome", alice)
            async with member(http, c, "r1", bob_token) as on_c:
                bob_welcome = await frame(on_c)
                assert bob_welcome["members"] == [{"member": welcome["member"], "identity": alice}]
                joined = await frame(on_a)
                assert joined == {
                    "type": "joined",
                    "member": bob_welcome["member"],
                    "identity": bob,
                }
                assert c.server.running.signaling.rooms.sizes() == {}  # the room lives on a

                await on_a.send_str(json.dumps({"type": "send", "data": {"sdp": "offer"}}))
                assert await frame(on_c) == {
                    "type": "message", "from": welcome["member"], "identity": alice,
                    "data": {"sdp": "offer"},
                }  # fmt: skip
                await on_c.send_str(
                    json.dumps({"type": "send", "to": welcome["member"], "data": {"sdp": "answer"}})
                )
                assert (await frame(on_a))["data"] == {"sdp": "answer"}

                # a dies: its link is gone and its record expires (deleted here, at once)
                a.redis_link.cut()
                store = redis.Redis.from_url(REDIS_URL)
                await store.delete(f"{redis_prefix}:node:{'a'}", f"{redis_prefix}:alive:a")
                await store.aclose()
                await c.link.beat()
                closing = await on_c.receive(timeout=WAIT)
                assert closing.type is aiohttp.WSMsgType.CLOSE
                assert (on_c.close_code, closing.extra) == (CloseCode.SERVICE_RESTART, HOME_GONE)

            async with (
                member(http, c, "r1", bob_token) as again,
                member(http, b, "r1", (await voip_token(b))[1]) as carol,
            ):
                rejoined = await frame(again)
                assert (rejoined["type"], rejoined["members"]) == ("welcome", [])
                assert (await frame(carol))["members"][0]["identity"] == bob
                assert (await frame(again))["type"] == "joined"
                assert c.server.running.signaling.rooms.sizes() == {"r1": 2}  # homed on c now
                assert b.server.running.signaling.rooms.sizes() == {}
