"""The unmodified npm Hybrid Connections clients against Passage's relay.

``hyco-ws`` 1.0.5 as WebSocket listener and sender, ``hyco-https`` 1.4.5 as HTTP
listener (driven by ``tests/interop/hyco/*.mjs``), a plain HTTP client as the
HTTP sender; over ``ws://`` (the plain port) and ``wss://`` with the generated
CA. The flows of reference §4.3: WebSocket echo with a subprotocol, small GET
and POST, a 100 KB POST and a 200 KB response through rendezvous, a streamed
response, HEAD and 204; and the refusals.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from api_harness import Api, api_server
from passage.hybrid.entities import ROOT_RULE
from passage.hybrid.sas import Rights, SasRule, make_sas_token

pytestmark = pytest.mark.interop

DRIVERS = Path(__file__).parent / "hyco"
KEY = "hyco-root-key-0123456789"
LISTEN_ONLY = SasRule(
    "listen-only", Rights.LISTEN, "listen-key-0123456789", "listen-key-9876543210"
)


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Api]:
    """A server with hybrid connections ``myhc`` and ``myhttp``, made through its admin."""
    async with api_server(tmp_path) as api:
        admin = api.running.api.hybrid_admin
        assert admin is not None
        for name in ("myhc", "myhttp"):
            await admin.create_connection(name)
        await admin.put_rule(
            None, LISTEN_ONLY.name, Rights.LISTEN,
            primary_key=LISTEN_ONLY.primary_key, secondary_key=LISTEN_ONLY.secondary_key,
        )  # fmt: skip
        await admin.put_rule(None, ROOT_RULE, Rights.MANAGE, primary_key=KEY)
        yield api


@dataclass
class Base:
    ws: str
    http: str
    ca: str | None


def bases(api: Api) -> dict[str, Base]:
    http_port = api.running.http[0][1]
    https_port = api.running.https[0][1]
    return {
        "ws": Base(f"ws://127.0.0.1:{http_port}", f"http://127.0.0.1:{http_port}", None),
        "wss": Base(
            f"wss://localhost:{https_port}",
            f"https://localhost:{https_port}",
            str(api.datadir.ca_cert),
        ),
    }


class Driver:
    """One node driver process; its stdout is one JSON event per line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.events: list[dict[str, object]] = []

    async def next_event(self, kind: str, within: float = 15.0) -> dict[str, object]:
        return await self.next_event_of(kind, within=within)

    async def next_event_of(self, *kinds: str, within: float = 15.0) -> dict[str, object]:
        """The next event of one of ``kinds`` (the others stay for later calls)."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + within
        while True:
            for event in self.events:
                if event["event"] in kinds:
                    self.events.remove(event)
                    return event
            line = await asyncio.wait_for(
                self.process.stdout.readline(), max(deadline - time.monotonic(), 0.01)
            )
            if not line:
                raise AssertionError(f"driver exited before {kinds!r}: {self.events}")
            self.events.append(json.loads(line))


@asynccontextmanager
async def driver(script: str, base: Base, name: str, **env: str) -> AsyncIterator[Driver]:
    node = shutil.which("node")
    assert node is not None, "node is installed by scripts/install-test-deps.sh"
    settings = {"HC_BASE": base.ws, "HC_NAME": name, "HC_KEY_NAME": ROOT_RULE, "HC_KEY": KEY}
    environment = {**os.environ, **settings, **env}
    if base.ca is not None:
        environment["NODE_EXTRA_CA_CERTS"] = base.ca
    process = await asyncio.create_subprocess_exec(
        node, str(DRIVERS / script), env=environment,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield Driver(process)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
                await process.wait()


def client_tls(base: Base) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cafile=base.ca) if base.ca else False


def sender_token(base: Base, name: str, rule: SasRule | None = None) -> str:
    rule_name, key = (rule.name, rule.primary_key) if rule else (ROOT_RULE, KEY)
    return make_sas_token(f"{base.http}/{name}", rule_name, key, int(time.time()) + 600)


@pytest.mark.parametrize("scheme", ["ws", "wss"])
@pytest.mark.parametrize("token_mode", ["header", "query"])
async def test_hyco_ws_echo_with_a_subprotocol(relay: Api, scheme: str, token_mode: str) -> None:
    base = bases(relay)[scheme]
    async with driver("ws-listener.mjs", base, "myhc", HC_TOKEN_MODE=token_mode) as listener:
        await listener.next_event("ready")
        async with driver(
            "ws-sender.mjs", base, "myhc", HC_TOKEN_MODE=token_mode,
            HC_SUFFIX="/a/b", HC_QUERY="app=1", HC_BINARY_LENGTH="70000",
        ) as sender:  # fmt: skip
            result = await sender.next_event("result")
            assert result["protocol"] == "chat.v1"
            assert result["text"] == "hello from hyco-ws"
            assert (result["binaryLength"], result["binaryEqual"]) == (70000, True)
            assert await sender.process.wait() == 0
        connection = await listener.next_event("connection")
        assert connection["protocol"] == "chat.v1"
        assert "/$hc/myhc/a/b?app=1&sb-hc-action=accept" in str(connection["url"])


@pytest.mark.parametrize("scheme", ["ws", "wss"])
async def test_hyco_https_listener_serves_http_senders(relay: Api, scheme: str) -> None:
    base = bases(relay)[scheme]
    headers = {"ServiceBusAuthorization": sender_token(base, "myhttp")}
    tls = client_tls(base)
    url = f"{base.http}/myhttp"
    async with driver("https-listener.mjs", base, "myhttp") as listener:
        await listener.next_event("ready")
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.get(f"{url}/hello", ssl=tls) as reply:
                assert (reply.status, await reply.text()) == (200, "hello")
                assert "Via" in reply.headers
            async with http.post(f"{url}/echo", data=b"small body", ssl=tls) as reply:
                assert (reply.status, await reply.read()) == (200, b"small body")
                assert reply.headers["x-echo-len"] == "10"
            upload = bytes(i % 251 for i in range(100 * 1024))
            async with http.post(f"{url}/echo", data=upload, ssl=tls) as reply:
                assert (reply.status, await reply.read()) == (200, upload)
            async with http.get(f"{url}/big", ssl=tls) as reply:
                assert reply.status == 200
                assert await reply.read() == bytes(i % 251 for i in range(204_800))
            async with http.get(f"{url}/stream", ssl=tls) as reply:
                assert (reply.status, await reply.text()) == (201, "part1-part2-part3")
            async with http.head(f"{url}/hello", ssl=tls) as reply:
                assert (reply.status, await reply.read()) == (200, b"")
            async with http.get(f"{url}/nocontent", ssl=tls) as reply:
                assert (reply.status, await reply.read()) == (204, b"")
            async with http.get(f"{url}/hello", ssl=tls) as reply:  # the stray frame was ignored
                assert (reply.status, await reply.text()) == (200, "hello")
        seen = []
        while len(seen) < 8:
            seen.append(await listener.next_event("request"))
        assert [(event["method"], event["bodyLength"]) for event in seen[1:3]] == [
            ("POST", 10),
            ("POST", 100 * 1024),
        ]


async def test_hyco_ws_sender_refusals(relay: Api) -> None:
    base = bases(relay)["ws"]
    async with driver("ws-sender.mjs", base, "nope") as sender:
        assert (await sender.next_event("error"))["status"] == 404
    async with driver("ws-sender.mjs", base, "myhc", HC_TOKEN_TTL="-600") as sender:
        assert (await sender.next_event("error"))["status"] == 401  # expired, past the grace
    async with driver("ws-sender.mjs", base, "myhc", HC_KEY="forged") as sender:
        assert (await sender.next_event("error"))["status"] == 401
    rule = {"HC_KEY_NAME": LISTEN_ONLY.name, "HC_KEY": LISTEN_ONLY.primary_key}
    async with driver("ws-sender.mjs", base, "myhc", **rule) as sender:
        assert (await sender.next_event("error"))["status"] == 403  # Listen, not Send
    async with driver("ws-sender.mjs", base, "myhc") as sender:
        assert (await sender.next_event("error"))["status"] == 404  # no listener yet


async def test_http_sender_without_listener_gets_502_and_without_token_401(relay: Api) -> None:
    base = bases(relay)["ws"]
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base.http}/myhttp/hello") as reply:
            assert reply.status == 401
        token = {"Authorization": sender_token(base, "myhttp")}  # Authorization works for HTTP
        async with http.get(f"{base.http}/myhttp/hello", headers=token) as reply:
            assert reply.status == 502
