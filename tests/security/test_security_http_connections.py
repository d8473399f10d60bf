"""The API port caps connections, in total and per client address (issue 10: "no connection cap").

Connections come from several loopback addresses (127.0.0.1, .2, .3: Linux
routes all of 127.0.0.0/8 to ``lo``), so one test can be two clients. Every
HTTP timeout is long here: the connections held are idle on purpose, and only
the caps may refuse them. A refused plain-HTTP connection is answered 503
with the JSON error body; a refused TLS connection is closed before its
handshake (no TLS work for a client over its cap).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from api_harness import Api, api_server
from http_probe import WAIT, close, open_raw, read_until_closed, status_of

LONG = "60"
QUIET = {
    f"PASSAGE_HTTP_{name}": LONG
    for name in ("TLS_HANDSHAKE_TIMEOUT", "REQUEST_HEAD_TIMEOUT", "IDLE_TIMEOUT", "BODY_TIMEOUT")
}


@pytest.fixture
async def api(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Api]:
    async with api_server(tmp_path, environ=QUIET | request.param) as started:
        yield started


def http_port(api: Api) -> int:
    return api.running.http[0][1]


def https_port(api: Api) -> int:
    return api.running.https[0][1]


async def served(api: Api, source: str) -> int | None:
    """The status of one plain-HTTP request from ``source`` on a new connection."""
    reader, writer = await open_raw(http_port(api), source=source)
    writer.write(b"GET /no-such-path HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status = status_of(await read_until_closed(reader))
    await close(writer)
    return status


async def refused_tls(api: Api, source: str) -> bool:
    """True if a TLS connection from ``source`` is closed before its handshake completes."""
    try:
        _, writer = await open_raw(https_port(api), source=source, tls=api.tls_context())
    except (ConnectionError, ssl.SSLError):
        return True
    await close(writer)
    return False


async def eventually_served(api: Api, source: str) -> int | None:
    """The status once the server has seen an earlier connection go (it may take a moment)."""
    deadline = time.monotonic() + WAIT
    while True:
        status = await served(api, source)
        if status != 503 or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("api", [{"PASSAGE_HTTP_MAX_CONNECTIONS_PER_IP": "3"}], indirect=True)
async def test_a_client_address_over_its_cap_is_refused_and_others_are_served(api: Api) -> None:
    held = [await open_raw(http_port(api), source="127.0.0.2") for _ in range(2)]
    held.append(await open_raw(https_port(api), source="127.0.0.2"))  # a TLS one counts too

    reader, writer = await open_raw(http_port(api), source="127.0.0.2")
    answer = await read_until_closed(reader)
    assert status_of(answer) == 503
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == "TooManyConnections"
    await close(writer)
    assert await refused_tls(api, "127.0.0.2")

    assert await served(api, "127.0.0.3") == 404  # another client is served

    await close(held.pop()[1])
    assert await eventually_served(api, "127.0.0.2") == 404  # a slot freed is a slot again
    for _, held_writer in held:
        await close(held_writer)


@pytest.mark.parametrize(
    "api",
    [{"PASSAGE_HTTP_MAX_CONNECTIONS": "4", "PASSAGE_HTTP_MAX_CONNECTIONS_PER_IP": "100"}],
    indirect=True,
)
async def test_the_server_wide_cap_refuses_every_address_once_reached(api: Api) -> None:
    held = [await open_raw(http_port(api), source=f"127.0.0.{n}") for n in (2, 2, 3, 3)]
    assert await served(api, "127.0.0.4") == 503
    assert await refused_tls(api, "127.0.0.5")
    await close(held.pop()[1])
    assert await eventually_served(api, "127.0.0.4") == 404
    for _, writer in held:
        await close(writer)


@pytest.mark.parametrize("api", [{"PASSAGE_HTTP_MAX_CONNECTIONS_PER_IP": "2"}], indirect=True)
async def test_websockets_count_against_the_cap_of_their_address(api: Api) -> None:
    """Two signaling sessions from 127.0.0.2 fill its cap; a third WebSocket is refused 503,
    and the two go on working."""
    token = await api.issue_token(await api.create_identity(), ["voip"])
    url = api.http_base.replace("http://", "ws://") + "/signal/capped"
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        first = await session.ws_connect(url, headers=headers)
        second = await session.ws_connect(url, headers=headers)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url, headers=headers)
        assert refused.value.status == 503
        await first.receive(timeout=WAIT)  # welcome
        await first.receive(timeout=WAIT)  # the second joined
        await second.receive(timeout=WAIT)  # welcome
        await first.send_str(json.dumps({"type": "send", "data": {"still": "here"}}))
        assert json.loads((await second.receive(timeout=WAIT)).data)["data"] == {"still": "here"}
        await first.close()
        await second.close()
