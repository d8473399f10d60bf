"""The Python SDK (``passage.hybrid.sdk``) against a real relay over real sockets.

Listeners and senders are the SDK's; the relay is ``passage.app.start`` with
its store and admin, so every exchange crosses the same code a user's does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from api_harness import Api, api_server
from passage.hybrid.entities import ROOT_RULE
from passage.hybrid.sas import Rights
from passage.hybrid.sdk import (
    ForwardingHandler,
    HybridConnectionError,
    HybridConnectionListener,
    HybridStream,
    KeyTokenProvider,
    ListenerClosed,
    RelayedRequest,
    RelayedResponse,
    RelayEndpoint,
    StaticTokenProvider,
    connect,
    request,
)
from passage_server import free_port
from waiting import until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Api]:
    async with api_server(tmp_path) as api:
        admin = api.running.api.hybrid_admin
        assert admin is not None
        await admin.create_connection("echo")
        await admin.create_connection("web/app")
        await admin.put_rule(None, "sender", rights=Rights.SEND)
        yield api


def endpoint(api: Api) -> RelayEndpoint:
    return RelayEndpoint.parse(api.http_base)


async def root_tokens(api: Api) -> KeyTokenProvider:
    admin = api.running.api.hybrid_admin
    assert admin is not None
    rule = await admin.get_rule(None, ROOT_RULE)
    return KeyTokenProvider(rule.name, rule.primary_key)


async def echo(stream: HybridStream) -> None:
    async for message in stream:
        await stream.send(message)


async def serve_echo(listener: HybridConnectionListener) -> None:
    async with asyncio.TaskGroup() as group:
        async for stream in listener:
            group.create_task(echo(stream))


async def test_a_sender_reaches_the_listener_and_messages_keep_their_kind(relay: Api) -> None:
    tokens = await root_tokens(relay)
    async with HybridConnectionListener(
        endpoint(relay), "echo", tokens, protocols=("chat.v2", "chat.v1")
    ) as listener:
        stream = await connect(
            endpoint(relay), "echo", tokens, suffix="/room/1", query=[("app", "x")],
            protocols=("chat.v1", "chat.v3"), headers={"X-Custom": "abc"},
        )  # fmt: skip
        accepted = await listener.accept()
        assert (stream.protocol, accepted.protocol) == ("chat.v1", "chat.v1")
        assert accepted.target == "/echo/room/1?app=x"
        assert accepted.headers["X-Custom"] == "abc"
        assert "ServiceBusAuthorization" not in accepted.headers
        assert accepted.tracking_id == stream.tracking_id
        await stream.send("text")
        await stream.send(b"\x00binary")
        assert [await accepted.receive(), await accepted.receive()] == ["text", b"\x00binary"]
        await accepted.send(b"back")
        assert await stream.receive() == b"back"
        await stream.close()
        assert await accepted.receive() is None
        assert accepted.close_code == 1000


async def test_http_requests_small_and_large_both_ways(relay: Api) -> None:
    seen: list[RelayedRequest] = []

    async def handler(request: RelayedRequest) -> RelayedResponse:
        seen.append(request)
        if request.path.startswith("/big"):
            return RelayedResponse(
                200, {"Content-Type": "application/octet-stream"}, b"r" * 200_000
            )
        if request.path == "/empty":
            return RelayedResponse(204)
        return RelayedResponse(201, {"X-Len": str(len(request.body))}, b"got:" + request.body[:10])

    tokens = await root_tokens(relay)
    async with HybridConnectionListener(endpoint(relay), "web/app", tokens, http_handler=handler):
        small = await request(endpoint(relay), "web/app", tokens, "POST", suffix="/p", body=b"hi")
        assert (small.status, small.body, small.headers["X-Len"]) == (201, b"got:hi", "2")
        assert "Via" in small.headers
        large = await request(endpoint(relay), "web/app", tokens, "POST", body=b"q" * 100_000)
        assert (large.status, large.headers["X-Len"]) == (201, "100000")
        big = await request(endpoint(relay), "web/app", tokens, "GET", suffix="/big")
        assert (big.status, len(big.body)) == (200, 200_000)
        head = await request(endpoint(relay), "web/app", tokens, "HEAD", suffix="/big")
        assert (head.status, head.body) == (200, b"")
        empty = await request(endpoint(relay), "web/app", tokens, "DELETE", suffix="/empty")
        assert (empty.status, empty.body) == (204, b"")
    assert [r.path for r in seen] == ["/p", "/", "/big", "/big", "/empty"]
    assert seen[0].target == "/web/app/p"
    assert seen[1].body == b"q" * 100_000


async def test_a_failing_handler_is_a_500_and_reserved_statuses_are_not_relayed(
    relay: Api,
) -> None:
    async def handler(request: RelayedRequest) -> RelayedResponse:
        if request.path == "/boom":
            raise RuntimeError("handler bug")
        return RelayedResponse(502, body=b"upstream said 502")

    tokens = await root_tokens(relay)
    async with HybridConnectionListener(endpoint(relay), "echo", tokens, http_handler=handler):
        boom = await request(endpoint(relay), "echo", tokens, suffix="/boom")
        assert boom.status == 500 and b"handler bug" not in boom.body
        bad = await request(endpoint(relay), "echo", tokens, suffix="/x")
        assert (bad.status, bad.headers["x-passage-upstream-status"]) == (500, "502")


async def test_a_listener_without_a_handler_answers_501(relay: Api) -> None:
    tokens = await root_tokens(relay)
    async with HybridConnectionListener(endpoint(relay), "echo", tokens):
        answer = await request(endpoint(relay), "echo", tokens)
        assert answer.status == 501


async def test_forwarding_to_a_local_http_service(relay: Api) -> None:
    async def local(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "path": request.path_qs,
                "method": request.method,
                "body": body.decode(),
                "forwarded": request.headers.get("X-Forwarded-For"),
                "custom": request.headers.get("X-Custom"),
            },
            headers={"Set-Cookie": "a=1"},
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", local)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    forward = ForwardingHandler(f"http://127.0.0.1:{port}")
    tokens = await root_tokens(relay)
    try:
        async with HybridConnectionListener(
            endpoint(relay), "web/app", tokens, http_handler=forward
        ):
            answer = await request(
                endpoint(relay), "web/app", tokens, "PUT", suffix="/a/b", query=[("x", "1")],
                headers={"X-Custom": "c"}, body=b"payload",
            )  # fmt: skip
            assert answer.status == 200, answer
            assert answer.headers["Set-Cookie"] == "a=1"
            seen = json.loads(answer.body)
            assert seen == {
                "path": "/a/b?x=1", "method": "PUT", "body": "payload",
                "forwarded": "127.0.0.1", "custom": "c",
            }  # fmt: skip
    finally:
        await forward.aclose()
        await runner.cleanup()


async def test_an_unreachable_local_service_is_a_503(relay: Api) -> None:
    """And the listener closes the handler's HTTP session as it closes: the docs' snippet,
    which never calls aclose(), leaves no unclosed session behind."""
    forward = ForwardingHandler(f"http://127.0.0.1:{free_port()}")
    tokens = await root_tokens(relay)
    async with HybridConnectionListener(endpoint(relay), "echo", tokens, http_handler=forward):
        answer = await request(endpoint(relay), "echo", tokens)
        assert answer.status == 503
        assert not forward.closed
    assert forward.closed


async def test_refusals_raise_with_the_relays_status(relay: Api) -> None:
    tokens = await root_tokens(relay)
    forged = KeyTokenProvider(ROOT_RULE, "not-the-key-at-all")
    with pytest.raises(HybridConnectionError) as refused:
        await HybridConnectionListener(endpoint(relay), "echo", forged).open()
    assert refused.value.status == 401
    # not the WebSocket client's "Invalid response status": what it means
    assert refused.value.message.startswith("the token was refused")
    admin = relay.running.api.hybrid_admin
    assert admin is not None
    sender_rule = await admin.get_rule(None, "sender")
    send_only = KeyTokenProvider(sender_rule.name, sender_rule.primary_key)
    with pytest.raises(HybridConnectionError) as refused:
        await HybridConnectionListener(endpoint(relay), "echo", send_only).open()
    assert refused.value.status == 403
    with pytest.raises(HybridConnectionError) as refused:
        await HybridConnectionListener(endpoint(relay), "nothing-here", tokens).open()
    assert refused.value.status == 404
    with pytest.raises(HybridConnectionError) as refused:
        await connect(endpoint(relay), "echo", send_only)  # no listener
    assert refused.value.status == 404
    assert refused.value.message == "no such hybrid connection, or nobody listens on it"
    unreachable = RelayEndpoint.parse(f"ws://127.0.0.1:{free_port()}")
    with pytest.raises(HybridConnectionError) as refused:
        await connect(unreachable, "echo", tokens)
    assert refused.value.status == 0


async def test_the_listener_reconnects_when_its_control_channel_drops(relay: Api) -> None:
    tokens = await root_tokens(relay)
    hybrid = relay.running.relay
    assert hybrid is not None
    async with HybridConnectionListener(
        endpoint(relay), "echo", tokens, reconnect_delays=(0.0,)
    ) as listener:
        serving = asyncio.create_task(serve_echo(listener))
        (channel,) = hybrid.channels.values()
        await channel.websocket.close(code=1011, message=b"test drops it")
        await until(lambda: listener.connections == 2 and listener.online)
        stream = await connect(endpoint(relay), "echo", tokens)
        await stream.send("still here")
        assert await stream.receive() == "still here"
        await stream.close()
    await serving
    assert listener.connections == 2


async def test_the_listener_renews_its_token_before_it_expires(relay: Api) -> None:
    hybrid = relay.running.relay
    assert hybrid is not None
    root = await root_tokens(relay)
    short = KeyTokenProvider(root.rule_name, root.key, ttl=2)
    async with HybridConnectionListener(endpoint(relay), "echo", short):
        (channel,) = hybrid.channels.values()
        first = channel.token_expiry
        await until(lambda: channel.token_expiry != first)  # renewed after 1.5 s
        assert channel.token_expiry > first


async def test_a_ready_token_works_and_is_never_renewed(relay: Api) -> None:
    admin = relay.running.api.hybrid_admin
    assert admin is not None
    text = await admin.token("echo", ttl=600, base_url=relay.http_base)
    ready = StaticTokenProvider(text)
    assert ready.renew_every is None
    async with HybridConnectionListener(endpoint(relay), "echo", ready) as listener:
        serving = asyncio.create_task(serve_echo(listener))
        stream = await connect(endpoint(relay), "echo", ready)
        await stream.send(b"x")
        assert await stream.receive() == b"x"
        await stream.close()
    await serving


async def test_closing_the_listener_closes_its_streams_and_ends_accept(relay: Api) -> None:
    tokens = await root_tokens(relay)
    listener = HybridConnectionListener(endpoint(relay), "echo", tokens)
    await listener.open()
    stream = await connect(endpoint(relay), "echo", tokens)
    await listener.accept()
    await listener.close()
    assert await stream.receive() is None
    assert stream.close_code in (1000, 1001)
    with pytest.raises(ListenerClosed):
        await listener.accept()
    assert [s async for s in listener] == []


async def test_senders_spread_over_listeners(relay: Api) -> None:
    tokens = await root_tokens(relay)
    listeners = [HybridConnectionListener(endpoint(relay), "echo", tokens) for _ in range(3)]
    counts = [0, 0, 0]

    async def count(index: int) -> None:
        async with asyncio.TaskGroup() as group:
            async for stream in listeners[index]:
                counts[index] += 1
                group.create_task(echo(stream))

    for listener in listeners:
        await listener.open()
    counting = [asyncio.create_task(count(i)) for i in range(3)]

    async def one(number: int) -> bytes | str | None:
        stream = await connect(endpoint(relay), "echo", tokens)
        await stream.send(f"n{number}")
        answer = await stream.receive()
        await stream.close()
        return answer

    answers = await asyncio.gather(*(one(n) for n in range(60)))
    assert answers == [f"n{n}" for n in range(60)]
    assert sum(counts) == 60 and all(counts), counts
    for listener in listeners:
        await listener.close()
    await asyncio.gather(*counting)


async def test_anonymous_senders_need_no_token(relay: Api) -> None:
    admin = relay.running.api.hybrid_admin
    assert admin is not None
    await admin.create_connection("open", requires_client_authorization=False)
    tokens = await root_tokens(relay)
    async with HybridConnectionListener(endpoint(relay), "open", tokens) as listener:
        serving = asyncio.create_task(serve_echo(listener))
        stream = await connect(endpoint(relay), "open", None)
        await stream.send("anon")
        assert await stream.receive() == "anon"
        await stream.close()
        with pytest.raises(HybridConnectionError) as refused:
            await connect(endpoint(relay), "echo", None)
        assert refused.value.status == 401
    await serving


async def test_over_tls_with_the_generated_ca(relay: Api) -> None:
    tokens = await root_tokens(relay)
    secure = RelayEndpoint.parse(relay.https_base)
    context = relay.tls_context()
    async with HybridConnectionListener(secure, "echo", tokens, ssl=context) as listener:
        serving = asyncio.create_task(serve_echo(listener))
        stream = await connect(secure, "echo", tokens, ssl=context)
        await stream.send("over tls")
        assert await stream.receive() == "over tls"
        await stream.close()
        with pytest.raises(HybridConnectionError) as refused:
            await connect(secure, "echo", tokens)  # the system store does not know our CA
        assert refused.value.status == 0
    await serving


async def test_a_session_can_be_shared_by_http_senders(relay: Api) -> None:
    async def handler(request: RelayedRequest) -> RelayedResponse:
        return RelayedResponse(200, body=request.method.encode())

    tokens = await root_tokens(relay)
    async with (
        HybridConnectionListener(endpoint(relay), "echo", tokens, http_handler=handler),
        aiohttp.ClientSession() as session,
    ):
        for method in ("GET", "POST", "PATCH"):
            answer = await request(endpoint(relay), "echo", tokens, method, session=session)
            assert answer.body == method.encode()
        assert not session.closed


async def test_a_listener_with_a_full_backlog_declines_senders_with_503(relay: Api) -> None:
    """The reject gesture (reference §2.4): the accept address with sb-hc-statusCode."""
    tokens = await root_tokens(relay)
    async with HybridConnectionListener(endpoint(relay), "echo", tokens, backlog=1):
        waiting = await connect(endpoint(relay), "echo", tokens)  # fills the backlog
        with pytest.raises(HybridConnectionError) as declined:
            await connect(endpoint(relay), "echo", tokens)
        assert declined.value.status == 503
        await waiting.close()


async def test_a_drain_waits_for_a_bridge_then_hands_the_listener_on(relay: Api) -> None:
    """SIGTERM's drain (``passage.lifecycle``) with an SDK listener and a live stream: the
    stream carries on, the server does not stop while it lives, and once it ends the
    listener's control channel is closed (1001) and the drain is over."""
    from passage.app import runtime_record
    from passage.lifecycle import Lifecycle
    from passage.sdnotify import Notifier

    running = relay.running
    record = runtime_record(running.config, running.datadir, running)
    lifecycle = Lifecycle(running, record, lambda: running.config, notifier=Notifier({}))
    tokens = await root_tokens(relay)
    async with HybridConnectionListener(endpoint(relay), "echo", tokens) as listener:
        stream = await connect(endpoint(relay), "echo", tokens)
        accepted = await listener.accept()
        lifecycle.request_drain()
        await until(lambda: running.relay.draining)
        await stream.send("during the drain")
        assert await accepted.receive() == "during the drain"
        await accepted.send("back")
        assert await stream.receive() == "back"
        # The bridge holds the drain: its listener's control channel is still open.
        assert len(running.relay.channels) == 1 and not lifecycle.stopped.is_set()
        await stream.close()
        await asyncio.wait_for(lifecycle.stopped.wait(), 20)
        assert running.relay.channels == {}
    await lifecycle.close()
