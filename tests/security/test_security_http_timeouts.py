"""The API port times out what a client leaves hanging (issue 10: "never times out").

Each test gives one HTTP timeout a small value (0.3 s) and every other one a
large value, then plays the client the issue describes: an idle TLS
connection, a TLS connection with no request, a request head trickled one
header at a time, a connection idle after its response, a body trickled one
byte at a time. The server must close each (the test waits for that outcome,
up to ``WAIT``), while a body sent at a fair pace and long-lived WebSockets
(signaling, a hybrid listener and a bridged sender) keep working past every
timeout.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from api_harness import Api, api_server, identity_path
from http_probe import TICK, close, open_raw, read_until_closed, status_of, trickle
from passage.hybrid.entities import HybridConnection, HybridConnectionPath, Namespace, root_rule
from passage.hybrid.sas import make_sas_token

SHORT = "0.3"
"""The one timeout under test, in seconds."""
LONG = "60"
"""Every other timeout: far beyond any wait of these tests."""

TIMEOUTS = ("TLS_HANDSHAKE_TIMEOUT", "REQUEST_HEAD_TIMEOUT", "IDLE_TIMEOUT", "BODY_TIMEOUT")


def only(short: str) -> dict[str, str]:
    """The ``PASSAGE_HTTP_*`` variables that make ``short`` the one short timeout."""
    environ = {f"PASSAGE_HTTP_{name}": LONG for name in TIMEOUTS}
    environ[f"PASSAGE_HTTP_{short}"] = SHORT
    return environ


@pytest.fixture
async def api(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Api]:
    async with api_server(tmp_path, environ=request.param) as started:
        yield started


def port_of(api: Api, scheme: str) -> int:
    return (api.running.https if scheme == "https" else api.running.http)[0][1]


@pytest.mark.parametrize("api", [only("TLS_HANDSHAKE_TIMEOUT")], indirect=True)
async def test_an_idle_connection_to_the_tls_port_is_closed_before_any_handshake(api: Api) -> None:
    reader, writer = await open_raw(port_of(api, "https"))
    assert await read_until_closed(reader) == b""
    await close(writer)


@pytest.mark.parametrize("api", [only("REQUEST_HEAD_TIMEOUT")], indirect=True)
async def test_a_tls_connection_that_sends_no_request_is_closed(api: Api) -> None:
    reader, writer = await open_raw(port_of(api, "https"), tls=api.tls_context())
    assert await read_until_closed(reader) == b""
    await close(writer)


@pytest.mark.parametrize("api", [only("REQUEST_HEAD_TIMEOUT")], indirect=True)
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_request_head_trickled_one_header_at_a_time_is_cut_with_408(
    api: Api, scheme: str
) -> None:
    tls = api.tls_context() if scheme == "https" else None
    reader, writer = await open_raw(port_of(api, scheme), tls=tls)
    writer.write(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n")
    answer = await trickle(reader, writer, [b"X-Slow: 1\r\n"])
    assert status_of(answer) == 408
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == "RequestTimeout"


@pytest.mark.parametrize("api", [only("IDLE_TIMEOUT")], indirect=True)
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_keep_alive_connection_idle_after_its_response_is_closed(
    api: Api, scheme: str
) -> None:
    tls = api.tls_context() if scheme == "https" else None
    reader, writer = await open_raw(port_of(api, scheme), tls=tls)
    writer.write(b"GET /no-such-path HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = await read_until_closed(reader)  # the response, then nothing until the close
    assert status_of(answer) == 404
    assert b"connection: close" not in answer.lower()  # kept alive, then timed out
    await close(writer)


@pytest.mark.parametrize(
    "api", [only("BODY_TIMEOUT") | {"PASSAGE_HTTP_BODY_MIN_RATE": "100"}], indirect=True
)
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_body_trickled_one_byte_at_a_time_is_cut(api: Api, scheme: str) -> None:
    tls = api.tls_context() if scheme == "https" else None
    reader, writer = await open_raw(port_of(api, scheme), tls=tls)
    writer.write(
        f"POST {identity_path()} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
        "Content-Type: application/json\r\n\r\n".encode()
    )
    answer = await trickle(reader, writer, [b" "])
    assert status_of(answer) in (None, 408)  # cut; no answer to a request never received


@pytest.mark.parametrize(
    "api", [only("BODY_TIMEOUT") | {"PASSAGE_HTTP_BODY_MIN_RATE": "100"}], indirect=True
)
async def test_a_body_sent_at_a_fair_pace_with_pauses_is_answered(api: Api) -> None:
    """1,000 bytes every 0.05 s is 20 kB/s, far above 100 B/s: the upload goes through."""
    body = b" " * 20_000
    reader, writer = await open_raw(port_of(api, "http"))
    writer.write(
        f"POST {identity_path()} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
        "Content-Type: application/json\r\nConnection: close\r\n\r\n".encode()
    )
    for start in range(0, len(body), 1000):
        writer.write(body[start : start + 1000])
        await writer.drain()
        await asyncio.sleep(TICK)
    assert status_of(await read_until_closed(reader)) == 401  # read whole, then unsigned
    await close(writer)


EVERY_TIMEOUT_SHORT = {f"PASSAGE_HTTP_{name}": SHORT for name in TIMEOUTS}
QUIET = 1.0
"""Seconds of silence on the WebSockets below: more than three times every HTTP timeout."""


@pytest.mark.parametrize("api", [EVERY_TIMEOUT_SHORT], indirect=True)
async def test_signaling_websockets_outlive_every_http_timeout(api: Api) -> None:
    alice, bob = await api.create_identity(), await api.create_identity()
    tokens = [await api.issue_token(who, ["voip"]) for who in (alice, bob)]
    url = api.https_base.replace("https", "wss") + "/signal/quiet"
    a, b = [
        await api.session.ws_connect(
            url, headers={"Authorization": f"Bearer {t}"}, ssl=api.tls_context()
        )
        for t in tokens
    ]
    await a.receive(timeout=5)  # welcome
    await b.receive(timeout=5)  # welcome
    await a.receive(timeout=5)  # bob joined
    await asyncio.sleep(QUIET)
    await a.send_str(json.dumps({"type": "send", "data": {"after": "silence"}}))
    message = await b.receive(timeout=5)
    assert json.loads(message.data)["data"] == {"after": "silence"}
    await a.close()
    await b.close()


@pytest.mark.parametrize("api", [EVERY_TIMEOUT_SHORT], indirect=True)
async def test_a_hybrid_listener_and_a_bridged_sender_outlive_every_http_timeout(
    api: Api,
) -> None:
    key = "root-key"
    path = HybridConnectionPath("quiet")
    served = Namespace(
        {path: HybridConnection(path, "quiet", True)},
        {"RootManageSharedAccessKey": root_rule(key, "second")},
    )
    api.running.relay.namespace = lambda: served
    token = make_sas_token(f"{api.http_base}/quiet", "RootManageSharedAccessKey", key,
                           int(time.time()) + 3600)  # fmt: skip
    ws = api.http_base.replace("http://", "ws://")
    session = api.session
    control = await session.ws_connect(
        f"{ws}/$hc/quiet?sb-hc-action=listen", headers={"ServiceBusAuthorization": token}
    )
    listeners = set(api.running.relay.channels)
    sender_task = asyncio.ensure_future(
        session.ws_connect(
            f"{ws}/$hc/quiet?sb-hc-action=connect", headers={"ServiceBusAuthorization": token}
        )
    )
    accept = json.loads((await control.receive(timeout=5)).data)["accept"]
    listener_side = await session.ws_connect(accept["address"])
    sender = await sender_task

    await asyncio.sleep(QUIET)
    await sender.send_str("ping after silence")
    assert (await listener_side.receive(timeout=5)).data == "ping after silence"
    await listener_side.send_str("pong")
    assert (await sender.receive(timeout=5)).data == "pong"
    assert set(api.running.relay.channels) == listeners  # the same control channel
    assert not control.closed
    for socket in (sender, listener_side, control):
        await socket.close()


@pytest.mark.parametrize("api", [only("IDLE_TIMEOUT")], indirect=True)
async def test_aiohttp_clients_reconnect_after_an_idle_close(api: Api) -> None:
    """A pooled connection closed for idleness costs a client nothing: the next request
    opens a new one (what every HTTP client does with a server's keep-alive close)."""
    first = await api.request("GET", "/no-such-path", sign=False)
    await asyncio.sleep(QUIET)
    second = await api.request("GET", "/no-such-path", sign=False)
    assert first.status == second.status == 404


@pytest.mark.parametrize("api", [{}], indirect=True)
async def test_defaults_are_what_docs_security_md_says(api: Api) -> None:
    limits = api.config.http
    assert (limits.tls_handshake_timeout, limits.request_head_timeout) == (10.0, 10.0)
    assert (limits.idle_timeout, limits.body_timeout, limits.body_min_rate) == (60.0, 10.0, 1024)
