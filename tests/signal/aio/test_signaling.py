"""``/signal/{room}`` on a real ``passage.app`` server: tokens, rooms, limits, close codes.

Clients are aiohttp WebSockets over real sockets (wss on the API port, trusting
the data directory's CA), except where a client must misbehave at the socket
level (one that never reads).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from api_harness import Api, api_server, identity_path
from passage.identity.ids import IdentityId
from passage.identity.scopes import Scope
from passage.identity.tokens import mint_token
from passage.signal import SUBPROTOCOL, CloseCode, SignalLimits

WAIT = 10.0
"""Seconds to wait for an expected frame before failing rather than hanging."""


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with api_server(tmp_path) as started:
        yield started


async def user(api: Api, scopes: tuple[str, ...] = ("voip",)) -> tuple[str, str]:
    """A new identity and a token for it."""
    identity = await api.create_identity()
    return identity, await api.issue_token(identity, list(scopes))


def url(api: Api, room: str, query: str = "") -> str:
    return api.https_base.replace("https", "wss") + f"/signal/{room}{query}"


async def connect(
    api: Api, room: str, token: str | None, *, query: str = "", protocols: tuple[str, ...] = ()
) -> aiohttp.ClientWebSocketResponse:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await api.session.ws_connect(
        url(api, room, query), headers=headers, protocols=protocols, ssl=api.tls_context()
    )


async def frame(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message = await ws.receive(timeout=WAIT)
    assert message.type is aiohttp.WSMsgType.TEXT, message
    decoded: dict[str, Any] = json.loads(message.data)
    return decoded


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, str]:
    """The close code and reason the server sent (skipping frames before it)."""
    while True:
        message = await ws.receive(timeout=WAIT)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return ws.close_code, str(message.extra or "")


async def test_two_members_exchange_messages_with_their_identities(api: Api) -> None:
    alice, alice_token = await user(api)
    bob, bob_token = await user(api)
    a = await connect(api, "r1", alice_token)
    welcome = await frame(a)
    assert welcome["type"] == "welcome" and welcome["identity"] == alice
    assert welcome["members"] == [] and welcome["limits"]["room_size"] == 2
    b = await connect(api, "r1", bob_token)
    bob_welcome = await frame(b)
    assert bob_welcome["members"] == [{"member": welcome["member"], "identity": alice}]
    assert await frame(a) == {"type": "joined", "member": bob_welcome["member"], "identity": bob}

    await a.send_str(json.dumps({"type": "send", "data": {"kind": "offer", "sdp": "x"}}))
    assert await frame(b) == {
        "type": "message",
        "from": welcome["member"],
        "identity": alice,
        "data": {"kind": "offer", "sdp": "x"},
    }
    await b.send_str(json.dumps({"type": "send", "to": welcome["member"], "data": {"k": 1}}))
    assert (await frame(a))["data"] == {"k": 1}

    await b.close()
    assert await frame(a) == {"type": "left", "member": bob_welcome["member"], "identity": bob}
    await a.close()


async def test_the_token_may_come_in_the_query_or_a_subprotocol(api: Api) -> None:
    identity, token = await user(api)
    by_query = await connect(api, "q", None, query=f"?access_token={token}")
    assert (await frame(by_query))["identity"] == identity
    by_protocol = await connect(api, "p", None, protocols=(SUBPROTOCOL, f"bearer.{token}"))
    assert by_protocol.protocol == SUBPROTOCOL  # selected; the token is never echoed
    assert (await frame(by_protocol))["identity"] == identity
    await by_query.close()
    await by_protocol.close()


async def test_an_identity_may_join_twice_as_two_members(api: Api) -> None:
    identity, token = await user(api)
    a, b = await connect(api, "twice", token), await connect(api, "twice", token)
    first, second = await frame(a), await frame(b)
    assert first["identity"] == second["identity"] == identity
    assert first["member"] != second["member"]
    await a.close()
    await b.close()


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (None, CloseCode.UNAUTHORIZED),
        ("not-a-token", CloseCode.UNAUTHORIZED),
        ("a.b.c", CloseCode.UNAUTHORIZED),
    ],
)
async def test_a_missing_or_bad_token_is_closed_4001(
    api: Api, token: str | None, code: CloseCode
) -> None:
    ws = await connect(api, "room", token)
    assert (await closed_with(ws))[0] == code


async def test_a_token_without_voip_is_closed_4004(api: Api) -> None:
    _, token = await user(api, ("chat",))
    ws = await connect(api, "room", token)
    assert await closed_with(ws) == (CloseCode.FORBIDDEN, "the access token has no voip scope")


async def test_an_expired_token_is_closed_4002(api: Api) -> None:
    identity = await api.create_identity()
    state = api.running.api.service.state
    expired, _ = mint_token(
        api.key, IdentityId(identity), (Scope.VOIP,), issued_ms=int((time.time() - 120) * 1000),
        lifetime=60, resource_id=state.resource_id, region=state.region,
    )  # fmt: skip
    ws = await connect(api, "room", expired)
    assert (await closed_with(ws))[0] == CloseCode.TOKEN_EXPIRED


async def test_revoking_closes_open_sessions_4003_and_refuses_new_ones(api: Api) -> None:
    identity, token = await user(api)
    _, other_token = await user(api)
    ws = await connect(api, "revoked", token)
    other = await connect(api, "revoked", other_token)
    await frame(ws)
    await frame(other)
    answer = await api.request("POST", identity_path(f"/{identity}/:revokeAccessTokens"))
    assert answer.status == 204
    assert (await closed_with(ws))[0] == CloseCode.TOKEN_REVOKED  # by the once-a-second sweep
    assert (await frame(other))["type"] == "left"  # the other member stays
    again = await connect(api, "revoked", token)
    assert (await closed_with(again))[0] == CloseCode.TOKEN_REVOKED
    await other.close()


async def test_deleting_the_identity_closes_its_sessions(api: Api) -> None:
    identity, token = await user(api)
    ws = await connect(api, "deleted", token)
    await frame(ws)
    assert (await api.request("DELETE", identity_path(f"/{identity}"))).status == 204
    assert (await closed_with(ws))[0] == CloseCode.TOKEN_REVOKED


async def test_a_full_room_closes_the_next_member_4006(api: Api) -> None:
    _, token = await user(api)
    a, b = await connect(api, "full", token), await connect(api, "full", token)
    third = await connect(api, "full", token)
    assert await closed_with(third) == (CloseCode.ROOM_FULL, "room is full (2)")
    await a.close()
    await b.close()


async def test_a_bad_room_name_is_closed_4005(api: Api) -> None:
    _, token = await user(api)
    ws = await connect(api, "a%20b", token)
    assert (await closed_with(ws))[0] == CloseCode.BAD_ROOM


@pytest.mark.parametrize(
    ("send", "code"),
    [
        ("not json", CloseCode.MALFORMED),
        ('{"type":"send","data":[]}', CloseCode.MALFORMED),
        (b"binary", CloseCode.MALFORMED),
        ('{"type":"send","data":{"x":"' + "y" * 20_000 + '"}}', CloseCode.TOO_BIG),
    ],
    ids=["not-json", "data-not-object", "binary", "too-big"],
)
async def test_a_bad_frame_closes_its_sender_only(api: Api, send: str | bytes, code: int) -> None:
    _, token = await user(api)
    bad, good = await connect(api, "bad", token), await connect(api, "bad", token)
    await frame(bad)
    await frame(good)
    await (bad.send_bytes(send) if isinstance(send, bytes) else bad.send_str(send))
    assert (await closed_with(bad))[0] == code
    assert (await frame(good))["type"] == "left"
    await good.close()


async def test_sending_faster_than_the_rate_is_closed_4008(api: Api) -> None:
    _, token = await user(api)
    ws = await connect(api, "fast", token)
    await frame(ws)
    for _ in range(SignalLimits().message_burst + 1):
        await ws.send_str('{"type":"send","data":{}}')
    assert (await closed_with(ws))[0] == CloseCode.RATE_LIMITED


async def test_a_member_that_never_reads_is_cut_off_4010(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """The outbox of a member that does not read is bounded; the others are not held up."""
    caplog.set_level(logging.INFO, "passage.signal")
    signaling = api.running.signaling
    assert signaling is not None
    signaling.rooms.limits = SignalLimits(
        queued_bytes=64 * 1024, messages_per_second=1e6, message_burst=1_000_000,
        message_bytes=60_000,
    )  # fmt: skip
    _, token = await user(api)
    host, port = api.running.http[0]
    stalled = socket.create_connection((host, port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    stalled.sendall(
        f"GET /signal/stall?access_token={token} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    answer = await asyncio.to_thread(stalled.recv, 4096)  # the 101, then it never reads again
    assert answer.startswith(b"HTTP/1.1 101"), answer
    sender = await api.session.ws_connect(f"ws://{host}:{port}/signal/stall?access_token={token}")
    welcome = await frame(sender)
    assert len(welcome["members"]) == 1
    big = json.dumps({"type": "send", "data": {"x": "y" * 50_000}})
    left = asyncio.ensure_future(frame(sender))
    for _ in range(2000):  # 100 MB at most; a few MB fill the socket buffers
        await sender.send_str(big)
        await asyncio.sleep(0)
        if left.done():
            break
    assert (await left)["type"] == "left", "the stalled member was never cut off"
    assert any(f": {CloseCode.SLOW_READER} too much unread" in r.message for r in caplog.records)
    stalled.close()
    await sender.close()


async def test_a_plain_get_is_426(api: Api) -> None:
    async with api.session.get(api.https_base + "/signal/room", ssl=api.tls_context()) as reply:
        assert reply.status == 426
        assert (await reply.json())["error"]["code"] == "UpgradeRequired"


async def test_signal_is_a_reserved_hybrid_connection_name(api: Api) -> None:
    answer = await api.request("PUT", "/hybridConnections/signal", {})
    assert answer.status == 409, answer


async def test_shutdown_closes_sessions_1001(tmp_path: Path) -> None:
    async with api_server(tmp_path) as started:
        _, token = await user(started)
        ws = await connect(started, "bye", token)
        await frame(ws)
        assert started.running.signaling is not None
        closing = asyncio.ensure_future(closed_with(ws))
        await started.running.signaling.close()
        assert (await closing)[0] == CloseCode.GOING_AWAY


async def test_a_drain_tells_members_to_reconnect_1012_and_turns_newcomers_away(
    tmp_path: Path,
) -> None:
    async with api_server(tmp_path) as started:
        _, token = await user(started)
        ws = await connect(started, "moving", token)
        await frame(ws)
        assert started.running.signaling is not None
        closing = asyncio.ensure_future(closed_with(ws))
        await started.running.signaling.drain()
        assert await closing == (CloseCode.SERVICE_RESTART, "server draining; reconnect")
        late = await connect(started, "moving", token)
        assert (await closed_with(late))[0] == CloseCode.SERVICE_RESTART
