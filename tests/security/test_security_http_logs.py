"""What an unauthenticated client sends cannot fill the logs (issue 10).

Malformed requests and aborted bodies, to every product on the API port (the
management API, a hybrid connection's HTTP senders and WebSockets, signaling),
over plain HTTP and TLS. Each may cost one WARNING line, never an ERROR and
never a traceback; and a flood of them costs a bounded number of lines, plus
one that says how many were left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yarl

from api_harness import Api, api_server, identity_path
from http_probe import WAIT, open_raw
from passage.hybrid.entities import HybridConnection, HybridConnectionPath, Namespace, root_rule
from passage.hybrid.sas import make_sas_token

KEY = "root-key"
ANONYMOUS = HybridConnectionPath("open")
"""A hybrid connection whose senders need no token: anyone can reach its listener's path."""


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with api_server(tmp_path) as started:
        served = Namespace(
            {ANONYMOUS: HybridConnection(ANONYMOUS, "open", False)},
            {"RootManageSharedAccessKey": root_rule(KEY, "second")},
        )
        started.running.relay.namespace = lambda: served
        yield started


def heads(path: str) -> list[bytes]:
    """Request heads a parser must refuse, aimed at ``path``."""
    texts = [
        "GARBAGE\r\n\r\n",
        f"GET {path} HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
        f"GET {path} HTTP/1.1\r\nHost: x\r\nX: {'y' * 20_000}\r\n\r\n",
        f"GET {path}{'z' * 20_000} HTTP/1.1\r\nHost: x\r\n\r\n",
        f"GET {path} HTTP/1.1\r\nHost: x\r\n" + "X-Many: 1\r\n" * 300 + "\r\n",
        f"GET {path} HTTP/9.9\r\nHost: x\r\n\r\n",
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: not-base64!\r\n\r\n",
    ]
    tls_on_the_plain_port = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64)
    return [text.encode() for text in texts] + [tls_on_the_plain_port]


def odd_hosts(path: str) -> list[bytes]:
    """Requests whose Host a URL parser refuses, with a token to check against it."""
    return [
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nServiceBusAuthorization: {token}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode()
        for host in ("[::1", "[v1.x", "h:99999")
        for token in ("SharedAccessSignature sr=x&sig=AAAA&se=1&skn=r", "junk")
    ] + [f"POST {path} HTTP/1.1\r\nHost: [::1\r\nContent-Length: 0\r\n\r\n".encode()]


def aborted_bodies(path: str) -> list[bytes]:
    """Requests whose body the client abandons part-way (it closes the connection)."""
    return [
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{{".encode(),
        f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc".encode(),
        f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n".encode() + b"x" * 10,
    ]


PATHS = [
    identity_path(),
    "/keys",
    "/open/some/where",
    "/$hc/open?sb-hc-action=connect",
    "/$hc/open?sb-hc-action=listen",
    "/$hc/open?sb-hc-action=request&sb-hc-id=x",
    "/signal/room",
    "/",
]


async def send_and_hang_up(port: int, data: bytes, *, tls: object = None) -> None:
    """Send ``data``, wait for the first bytes of an answer (or the close), then hang up.

    A body is abandoned part-way: the client hangs up while the server reads it."""
    reader, writer = await open_raw(port, tls=tls)  # type: ignore[arg-type]
    writer.write(data)
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        await writer.drain()
        if data.startswith((b"POST", b"PUT")) and not data.endswith(b"\r\n\r\n"):
            await asyncio.sleep(0.05)  # the server is reading the body now
        else:
            async with asyncio.timeout(WAIT):
                await reader.read(65536)
    writer.transport.abort()


def unwanted(records: list[logging.LogRecord]) -> list[str]:
    return [
        f"{record.levelname} {record.name}: {record.getMessage()[:200]}"
        for record in records
        if record.levelno >= logging.ERROR or record.exc_info is not None
    ]


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_malformed_requests_and_aborted_bodies_log_no_error_and_no_traceback(
    api: Api, scheme: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = (api.running.http if scheme == "http" else api.running.https)[0][1]
    tls = api.tls_context() if scheme == "https" else None
    caplog.set_level(logging.DEBUG)
    for path in PATHS:
        for data in heads(path) + aborted_bodies(path) + odd_hosts(path):
            if tls is not None and data.startswith(b"\x16"):
                continue
            await send_and_hang_up(port, data, tls=tls)
    await asyncio.sleep(0.2)  # handlers notice the hang-ups
    assert unwanted(caplog.records) == []


async def test_a_listener_that_hangs_up_mid_body_logs_no_traceback(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """The other side of the relay: a listener token holder, too, gets one line at most."""
    token = make_sas_token(f"{api.http_base}/open", "RootManageSharedAccessKey", KEY,
                           int(time.time()) + 3600)  # fmt: skip
    caplog.set_level(logging.DEBUG)
    port = api.running.http[0][1]
    await send_and_hang_up(
        port,
        f"GET /$hc/open?sb-hc-action=listen HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"ServiceBusAuthorization: {token}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode()
        + b"\x81\xfe\xff\xff",  # a text frame announcing 65,535 bytes, then nothing
    )
    await asyncio.sleep(0.2)
    assert unwanted(caplog.records) == []


async def test_a_flood_of_malformed_requests_costs_a_bounded_number_of_lines(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    port = api.running.http[0][1]
    caplog.set_level(logging.DEBUG)
    for _ in range(300):
        await send_and_hang_up(port, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n")
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert 1 <= len(lines) <= 120, len(lines)
    assert not unwanted(caplog.records)


async def test_an_aborted_body_to_the_api_is_one_warning(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await send_and_hang_up(
        api.running.http[0][1],
        f"POST {identity_path()} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{".encode(),
    )
    await asyncio.sleep(0.2)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert "127.0.0.1" in warnings[0].getMessage()
    assert not unwanted(caplog.records)


@pytest.mark.parametrize("status", ["²", "4٠٣", "99999999999999999999", "-404", ""])
async def test_a_listener_declining_with_an_odd_status_is_answered_not_logged(
    api: Api, status: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``sb-hc-statusCode`` is the listener's to write: whatever it writes, the sender gets
    a 4xx/5xx and the log no traceback."""
    caplog.set_level(logging.DEBUG)
    token = make_sas_token(f"{api.http_base}/open", "RootManageSharedAccessKey", KEY,
                           int(time.time()) + 3600)  # fmt: skip
    ws = api.http_base.replace("http://", "ws://")
    control = await api.session.ws_connect(
        f"{ws}/$hc/open?sb-hc-action=listen", headers={"ServiceBusAuthorization": token}
    )
    sender = asyncio.ensure_future(api.session.ws_connect(f"{ws}/$hc/open?sb-hc-action=connect"))
    accept = json.loads((await control.receive(timeout=WAIT)).data)["accept"]
    declined = yarl.URL(accept["address"]).update_query({"sb-hc-statusCode": status})
    async with api.session.get(declined.with_scheme("http")) as response:
        assert response.status == 410
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await sender
    assert 400 <= refused.value.status <= 599
    await control.close()
    assert unwanted(caplog.records) == []


async def test_a_signed_token_with_an_expiry_past_any_clock_is_refused_not_logged(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """A key holder can sign any ``se``; one of 400 digits is refused (401), not a 500."""
    caplog.set_level(logging.DEBUG)
    token = make_sas_token(f"{api.http_base}/open", "RootManageSharedAccessKey", KEY, 10**400)
    ws = api.http_base.replace("http://", "ws://")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await api.session.ws_connect(
            f"{ws}/$hc/open?sb-hc-action=listen", headers={"ServiceBusAuthorization": token}
        )
    assert refused.value.status == 401
    assert unwanted(caplog.records) == []
