"""The Hybrid Connections relay over real sockets, driven by hand-written protocol clients.

These speak the wire protocol directly (aiohttp WebSockets and HTTP), so each
rule of reference §2 and checklist §4.5 can be checked on its own; the
unmodified hyco-ws/hyco-https clients are in ``tests/interop``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from api_harness import Api, api_server
from passage.hybrid.entities import HybridConnection, HybridConnectionPath, Namespace, root_rule
from passage.hybrid.sas import Rights, SasRule, make_sas_token
from waiting import until

KEY = "root-key-text"
SEND_KEY = "send-only-key"


def namespace(*names: str, anonymous: bool = False) -> Namespace:
    connections = {
        HybridConnectionPath(name.lower()): HybridConnection(
            HybridConnectionPath(name.lower()), name, not anonymous
        )
        for name in names
    }
    rules = {
        "RootManageSharedAccessKey": root_rule(KEY, "second"),
        "sender": SasRule("sender", Rights.SEND, SEND_KEY, "x"),
    }
    return Namespace(connections, rules)


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Api]:
    async with api_server(tmp_path) as api:
        hybrid = api.running.relay
        assert hybrid is not None
        served = namespace("echo", "a/b")
        hybrid.namespace = lambda: served
        yield api


def token(api: Api, name: str, rule: str = "RootManageSharedAccessKey", key: str = KEY) -> str:
    return make_sas_token(f"{api.http_base}/{name}", rule, key, int(time.time()) + 3600)


def ws_base(api: Api) -> str:
    return api.http_base.replace("http://", "ws://")


class Listener:
    """A minimal protocol listener: echoes WebSocket senders, answers HTTP requests."""

    def __init__(self, api: Api, name: str) -> None:
        self.api = api
        self.name = name
        self.control: aiohttp.ClientWebSocketResponse | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.requests: list[dict[str, object]] = []

    async def start(self) -> None:
        self.control = await self.api.session.ws_connect(
            f"{ws_base(self.api)}/$hc/{self.name}?sb-hc-action=listen",
            headers={"ServiceBusAuthorization": token(self.api, self.name)},
        )
        self.tasks.add(asyncio.create_task(self._serve()))

    async def _serve(self) -> None:
        assert self.control is not None
        pending: dict[str, object] | None = None
        async for message in self.control:
            if message.type is aiohttp.WSMsgType.TEXT:
                command = json.loads(message.data)
                if "accept" in command:
                    self.tasks.add(asyncio.create_task(self._echo(command["accept"])))
                elif "request" in command and "method" in command["request"]:
                    if command["request"]["body"]:
                        pending = command["request"]
                    else:
                        await self._answer(self.control, command["request"], b"")
                elif "request" in command:
                    self.tasks.add(asyncio.create_task(self._rendezvous(command["request"])))
            elif message.type is aiohttp.WSMsgType.BINARY and pending is not None:
                await self._answer(self.control, pending, message.data)
                pending = None

    async def _echo(self, accept: dict[str, object]) -> None:
        protocol = str(accept["connectHeaders"]).count("chat.v1") and "chat.v1"  # type: ignore[operator]
        async with self.api.session.ws_connect(
            str(accept["address"]), protocols=(protocol,) if protocol else ()
        ) as socket:
            async for message in socket:
                if message.type is aiohttp.WSMsgType.TEXT:
                    await socket.send_str(message.data)
                elif message.type is aiohttp.WSMsgType.BINARY:
                    await socket.send_bytes(message.data)

    async def _rendezvous(self, request: dict[str, object]) -> None:
        async with self.api.session.ws_connect(str(request["address"])) as socket:
            head = json.loads((await socket.receive()).data)["request"]
            body = (await socket.receive()).data if head["body"] else b""
            await self._answer(socket, head, body)
            await socket.receive()  # the relay closes it

    async def _answer(
        self, socket: aiohttp.ClientWebSocketResponse, request: dict[str, object], body: bytes
    ) -> None:
        self.requests.append({**request, "bodyLength": len(body)})
        reply = b"echo:" + body if request["method"] != "GET" else b"x" * 200_000
        if str(request["requestTarget"]).split("?")[0].endswith("/small"):
            reply = b"small"
        status = 504 if str(request["requestTarget"]).endswith("/reserved") else 200
        head = {
            "requestId": request["id"], "statusCode": status, "statusDescription": "OK",
            "responseHeaders": {"content-type": "application/octet-stream"}, "body": True,
        }  # fmt: skip
        if len(reply) > 64 * 1024 and socket is self.control:
            # A large response goes over the rendezvous; the listener speaks first.
            async with self.api.session.ws_connect(str(request["address"])) as rendezvous:
                await rendezvous.send_str(json.dumps({"response": head}))
                await rendezvous.send_bytes(reply)
                await rendezvous.receive()
            return
        await socket.send_str(json.dumps({"response": head}))
        if str(request["requestTarget"]).endswith("/no-body"):
            await socket.send_str(json.dumps({"ping": {}}))  # a command where the body belongs
            return
        await socket.send_bytes(reply)

    async def stop(self) -> None:
        if self.control is not None:
            await self.control.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def test_a_websocket_sender_reaches_the_listener_with_its_subprotocol(relay: Api) -> None:
    listener = Listener(relay, "echo")
    await listener.start()
    try:
        async with relay.session.ws_connect(
            f"{ws_base(relay)}/$hc/echo/suffix?app=1&sb-hc-action=connect",
            headers={"ServiceBusAuthorization": token(relay, "echo")},
            protocols=("chat.v1", "chat.v2"),
        ) as sender:
            assert sender.protocol == "chat.v1"
            await sender.send_str("hello")
            assert (await sender.receive()).data == "hello"
            await sender.send_bytes(b"\x00\x01" * 1000)
            assert (await sender.receive()).data == b"\x00\x01" * 1000
    finally:
        await listener.stop()


async def test_http_senders_inline_and_by_rendezvous(relay: Api) -> None:
    listener = Listener(relay, "echo")
    await listener.start()
    headers = {"ServiceBusAuthorization": token(relay, "echo")}
    try:
        async with relay.session.post(
            f"{relay.http_base}/echo/small?x=1&sb-hc-id=tracking", data=b"hi", headers=headers
        ) as small:
            assert small.status == 200
            assert await small.read() == b"small"
            assert small.headers["Via"].startswith("1.1 ")
        big_body = bytes(range(256)) * 400  # 102,400 bytes: the request goes by rendezvous
        async with relay.session.post(
            f"{relay.http_base}/echo/upload", data=big_body, headers=headers
        ) as upload:
            assert upload.status == 200
            assert await upload.read() == b"echo:" + big_body
        async with relay.session.get(f"{relay.http_base}/echo/big", headers=headers) as big:
            assert big.status == 200
            assert len(await big.read()) == 200_000
        async with relay.session.head(f"{relay.http_base}/echo/big", headers=headers) as head:
            assert head.status == 200
            assert await head.read() == b""
    finally:
        await listener.stop()
    targets = [request["requestTarget"] for request in listener.requests]
    assert targets[0] == "/echo/small?x=1"  # sb-hc-* stripped, the entity name kept


async def test_errors_no_listener_no_token_wrong_right_unknown_entity(relay: Api) -> None:
    base = relay.http_base
    async with relay.session.get(
        f"{base}/echo/x", headers={"ServiceBusAuthorization": token(relay, "echo")}
    ) as r:
        assert r.status == 502
        assert (await r.json())["error"]["code"] == "BadGateway"
    async with relay.session.get(f"{base}/echo/x") as r:
        assert r.status == 401
    forged = make_sas_token(
        f"{base}/echo", "RootManageSharedAccessKey", "wrong", int(time.time()) + 60
    )
    async with relay.session.get(
        f"{base}/echo/x", headers={"ServiceBusAuthorization": forged}
    ) as r:
        assert r.status == 401
    send_only = token(relay, "echo", "sender", SEND_KEY)
    with pytest.raises(aiohttp.WSServerHandshakeError) as listen:
        await relay.session.ws_connect(
            f"{ws_base(relay)}/$hc/echo?sb-hc-action=listen",
            headers={"ServiceBusAuthorization": send_only},
        )
    assert listen.value.status == 403
    with pytest.raises(aiohttp.WSServerHandshakeError) as unknown:
        await relay.session.ws_connect(
            f"{ws_base(relay)}/$hc/nope?sb-hc-action=connect",
            headers={"ServiceBusAuthorization": token(relay, "nope")},
        )
    assert unknown.value.status == 404
    with pytest.raises(aiohttp.WSServerHandshakeError) as nobody:
        await relay.session.ws_connect(
            f"{ws_base(relay)}/$hc/echo?sb-hc-action=connect",
            headers={"ServiceBusAuthorization": token(relay, "echo")},
        )
    assert nobody.value.status == 404


async def test_the_listener_limit_refuses_one_more(relay: Api) -> None:
    hybrid = relay.running.relay
    assert hybrid is not None
    listeners = [Listener(relay, "a/b") for _ in range(hybrid.settings.max_listeners)]
    try:
        for listener in listeners:
            await listener.start()
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await relay.session.ws_connect(
                f"{ws_base(relay)}/$hc/a/b?sb-hc-action=listen",
                headers={"ServiceBusAuthorization": token(relay, "a/b")},
            )
        assert refused.value.status == 403
    finally:
        for listener in listeners:
            await listener.stop()


async def test_a_listener_that_goes_closes_its_senders(relay: Api) -> None:
    listener = Listener(relay, "echo")
    await listener.start()
    sender = await relay.session.ws_connect(
        f"{ws_base(relay)}/$hc/echo?sb-hc-action=connect",
        headers={"ServiceBusAuthorization": token(relay, "echo")},
    )
    await sender.send_str("ping")
    assert (await sender.receive()).data == "ping"
    assert listener.control is not None
    await listener.control.close()  # the control channel goes; the stream must not hang
    closing = await asyncio.wait_for(sender.receive(), 5)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    await sender.close()
    await listener.stop()


async def test_a_full_rendezvous_table_turns_senders_away_at_once(relay: Api) -> None:
    hybrid = relay.running.relay
    assert hybrid is not None
    listener = Listener(relay, "echo")
    await listener.start()
    try:
        hybrid.rendezvous.max_entries = 0
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await relay.session.ws_connect(
                f"{ws_base(relay)}/$hc/echo?sb-hc-action=connect",
                headers={"ServiceBusAuthorization": token(relay, "echo")},
            )
        assert refused.value.status == 503
        async with relay.session.get(
            f"{relay.http_base}/echo/small",
            headers={"ServiceBusAuthorization": token(relay, "echo")},
        ) as answer:
            assert answer.status == 503
            assert (await answer.json())["error"]["code"] == "ServerBusy"
    finally:
        await listener.stop()


async def invalid_response_is_answered_at_once(relay: Api, method: str, path: str) -> None:
    """``method`` on ``path`` through a listener gets 500 InvalidListenerResponse, well
    within the 60 s it would otherwise wait for a 504. (The listener answers a GET with
    200 kB, over the rendezvous; a POST with its body echoed, on the control channel.)"""
    listener = Listener(relay, "echo")
    await listener.start()
    try:
        async with relay.session.request(
            method,
            f"{relay.http_base}{path}",
            data=b"small" if method == "POST" else None,
            headers={"ServiceBusAuthorization": token(relay, "echo")},
            timeout=aiohttp.ClientTimeout(total=20),
        ) as answer:
            assert answer.status == 500
            assert (await answer.json())["error"]["code"] == "InvalidListenerResponse"
    finally:
        await listener.stop()


async def test_a_response_the_relay_cannot_relay_is_a_500_at_once(relay: Api) -> None:
    """504 is the relay's own status (reference §2.3): a listener sending it is answered
    for, without making the sender wait out the 60 s response timeout."""
    await invalid_response_is_answered_at_once(relay, "GET", "/echo/reserved")


async def test_a_response_whose_body_never_comes_is_a_500_at_once(relay: Api) -> None:
    """A head with ``body: true`` must be followed by exactly one binary message (reference
    §2.3); when another command comes instead, the sender is told, not left to time out."""
    await invalid_response_is_answered_at_once(relay, "POST", "/echo/no-body")


async def test_listeners_and_bridges_are_listed_with_their_bytes(relay: Api) -> None:
    """``GET /live/listeners`` and ``/live/bridges``: who is connected, since when, and the
    bytes a bridge relayed each way."""
    listener = Listener(relay, "echo")
    await listener.start()
    try:
        listed = await relay.request("GET", "/live/listeners")
        [shown] = listed.body["value"]
        assert shown["hybridConnection"] == "echo"
        assert shown["address"].startswith("127.0.0.1:")
        assert shown["connectedAt"].endswith("Z") and shown["bridges"] == 0
        async with relay.session.ws_connect(
            f"{ws_base(relay)}/$hc/echo?sb-hc-action=connect",
            headers={"ServiceBusAuthorization": token(relay, "echo")},
        ) as sender:
            await sender.send_bytes(b"z" * 300)
            assert (await sender.receive()).data == b"z" * 300
            [bridge] = (await relay.request("GET", "/live/bridges")).body["value"]
            assert bridge["listenerId"] == shown["id"]
            assert bridge["bytesToListener"] == 300
            assert bridge["bytesToSender"] == 300
            assert bridge["senderAddress"].startswith("127.0.0.1:")
            [again] = (await relay.request("GET", "/live/listeners")).body["value"]
            assert again["bridges"] == 1
        await until(lambda: not relay.running.relay.live_bridges())  # the sender went
        assert (await relay.request("GET", "/live/bridges")).body["value"] == []
    finally:
        await listener.stop()


async def test_a_drain_closes_control_channels_1001_once_their_bridges_end(relay: Api) -> None:
    hybrid = relay.running.relay
    assert hybrid is not None
    listener = Listener(relay, "echo")
    await listener.start()
    sender = await relay.session.ws_connect(
        f"{ws_base(relay)}/$hc/echo?sb-hc-action=connect",
        headers={"ServiceBusAuthorization": token(relay, "echo")},
    )
    await sender.send_str("before")
    assert (await sender.receive()).data == "before"
    draining = asyncio.ensure_future(hybrid.drain(poll=0.01))
    await asyncio.sleep(0.05)  # several looks at the channel: its bridge holds it open
    assert not draining.done()
    await sender.send_str("during")  # the bridge in flight carries on
    assert (await sender.receive()).data == "during"
    # No new listener, and no new sender paired with the draining one.
    refused = await relay.session.get(
        f"{ws_base(relay).replace('ws://', 'http://')}/$hc/echo?sb-hc-action=listen",
        headers={"ServiceBusAuthorization": token(relay, "echo"), "Connection": "Upgrade",
                 "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                 "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="},
    )  # fmt: skip
    assert refused.status == 503
    await sender.close()
    await asyncio.wait_for(draining, 5)
    assert listener.control is not None
    closing = await asyncio.wait_for(listener.control.receive(), 5)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert listener.control.close_code == 1001
    await listener.stop()
