"""HTTP senders cannot take the relay's memory (issue 10).

Bodies were read whole before a listener was even looked for, with no bound on
how many were in flight: eight 16 MiB bodies to a hybrid connection with no
listener took 113 MiB. Now "no listener" (502) is answered before any of the
body is read, and what HTTP exchanges may hold is reserved before their body
is read, per hybrid connection (``--hc-http-in-flight-per-connection``) and
in total (``--hc-http-in-flight``): past either, 503 ``ServerBusy`` at once,
naming the limit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from api_harness import Api, api_server
from passage.hybrid import framesocket
from passage.hybrid.entities import ROOT_RULE
from passage.hybrid.sas import Rights, make_sas_token
from passage.hybrid.wsframes import Opcode
from waiting import until

pytestmark = pytest.mark.timeout(120)
KEY = "senders-root-key-0123456789"
MIB = 1024 * 1024


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Api]:
    limits = {
        "PASSAGE_HC_HTTP_IN_FLIGHT_PER_CONNECTION": str(MIB),  # two streamed exchanges
        "PASSAGE_HC_HTTP_IN_FLIGHT": str(3 * MIB // 2),  # three
    }
    async with api_server(tmp_path, environ=limits) as api:
        admin = api.running.api.hybrid_admin
        assert admin is not None
        for name in ("svc", "other"):
            await admin.create_connection(name)
        await admin.put_rule(None, ROOT_RULE, Rights.MANAGE, primary_key=KEY)
        yield api
        while OPEN:  # before the server stops, which would wait for them
            writer = OPEN.pop()
            writer.close()
            await asyncio.gather(writer.wait_closed(), return_exceptions=True)


def token(api: Api, name: str) -> str:
    return make_sas_token(f"{api.http_base}/{name}", ROOT_RULE, KEY, int(time.time()) + 600)


OPEN: list[asyncio.StreamWriter] = []


async def head_only(api: Api, name: str, framing: str) -> asyncio.StreamReader:
    """A POST to ``name`` whose head promises a body (``framing``) that never comes; the
    connection stays open (in :data:`OPEN`) until the test closes it."""
    host, port = api.running.http[0]
    reader, writer = await asyncio.open_connection(host, port)
    OPEN.append(writer)
    writer.write(
        f"POST /{name}/upload HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: {token(api, name)}\r\n{framing}\r\n\r\n".encode()
    )
    if "chunked" in framing:
        writer.write(b"10000\r\n" + b"x" * 0x10000 + b"\r\n")  # one 64 KiB chunk, no end
    await writer.drain()
    return reader


async def status_of(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )  # fmt: skip
    return int(head.split()[1]), await reader.readexactly(length)


async def ignoring_listener(api: Api, name: str) -> aiohttp.ClientWebSocketResponse:
    """A listener that takes requests and never answers them."""
    return await api.session.ws_connect(
        api.http_base.replace("http://", "ws://") + f"/$hc/{name}?sb-hc-action=listen",
        headers={"ServiceBusAuthorization": token(api, name)},
    )


async def test_no_listener_is_502_before_any_of_the_body_is_read(relay: Api) -> None:
    reader = await head_only(relay, "svc", f"Content-Length: {16 * MIB}")
    status, body = await status_of(reader)
    assert status == 502
    assert json.loads(body)["error"]["code"] == "BadGateway"


async def test_bytes_in_flight_are_bounded_per_hybrid_connection_and_in_total(
    relay: Api,
) -> None:
    listeners = [await ignoring_listener(relay, name) for name in ("svc", "other")]
    try:
        chunked = "Transfer-Encoding: chunked"
        in_flight = relay.running.relay.in_flight
        held = [await head_only(relay, "svc", chunked) for _ in range(2)]  # 2 x 512 KiB
        await until(lambda: in_flight.held("svc") == MIB)
        status, body = await status_of(await head_only(relay, "svc", chunked))
        assert status == 503
        error = json.loads(body)["error"]
        assert error["code"] == "ServerBusy"
        assert "--hc-http-in-flight-per-connection" in error["message"]
        held.append(await head_only(relay, "other", chunked))  # another connection: fits
        await until(lambda: in_flight.total == 3 * MIB // 2)
        status, body = await status_of(await head_only(relay, "other", chunked))
        assert status == 503  # 1.5 MiB held in all: the total refuses it
        assert "--hc-http-in-flight)" in json.loads(body)["error"]["message"]
    finally:
        for listener in listeners:
            await listener.close()


async def test_a_response_body_that_goes_quiet_is_cut_not_ended(relay: Api) -> None:
    """A listener that sends part of a body and then nothing: after the idle deadline
    the sender's connection is dropped without the chunked body's end, so no client
    takes the part for the whole."""
    hybrid = relay.running.relay
    hybrid.settings = dataclasses.replace(hybrid.settings, response_timeout=1.0)
    control = await ignoring_listener(relay, "svc")
    try:
        asking = asyncio.create_task(
            relay.session.get(
                f"{relay.http_base}/svc/stalls",
                headers={"ServiceBusAuthorization": token(relay, "svc")},
            )
        )
        request = json.loads((await asyncio.wait_for(control.receive(), 10)).data)["request"]
        rendezvous = await framesocket.connect(request["address"])
        head = {"requestId": request["id"], "statusCode": 200, "body": True}
        await rendezvous.send_text(json.dumps({"response": head}))
        await rendezvous.send(Opcode.BINARY, b"x" * 1000, fin=False)  # and then nothing
        async with await asking as answer:
            assert answer.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await answer.read()
        rendezvous.abort()
    finally:
        await control.close()
